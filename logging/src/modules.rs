//! Every module of Sluice's crates: the loggers `GET /admin/loggers` lists (tracing targets are module paths), as
//! Kafka Connect lists its loggers. Kept in step with the source tree by the test below, which names what to add.

/// (crate, module) of every module of the workspace's library crates.
pub const MODULES: &[(&str, &str)] = &[
    ("sluice_agent", "sluice_agent"),
    ("sluice_agent", "sluice_agent::allocator"),
    ("sluice_agent", "sluice_agent::fence"),
    ("sluice_agent", "sluice_agent::instance_lock"),
    ("sluice_agent", "sluice_agent::lease"),
    ("sluice_agent", "sluice_agent::metrics"),
    ("sluice_agent", "sluice_agent::properties"),
    ("sluice_agent", "sluice_agent::runtime"),
    ("sluice_agent", "sluice_agent::runtime::config"),
    ("sluice_agent", "sluice_agent::runtime::config_providers"),
    ("sluice_agent", "sluice_agent::runtime::errors"),
    ("sluice_agent", "sluice_agent::runtime::exactly_once"),
    ("sluice_agent", "sluice_agent::runtime::fetch"),
    ("sluice_agent", "sluice_agent::runtime::headers"),
    ("sluice_agent", "sluice_agent::runtime::offsets"),
    ("sluice_agent", "sluice_agent::runtime::producer"),
    ("sluice_agent", "sluice_agent::runtime::shared"),
    ("sluice_agent", "sluice_agent::runtime::sink"),
    ("sluice_agent", "sluice_agent::runtime::source"),
    ("sluice_agent", "sluice_agent::runtime::topics"),
    ("sluice_agent", "sluice_agent::session"),
    ("sluice_agent", "sluice_agent::supervisor"),
    ("sluice_connect_api", "sluice_connect_api"),
    ("sluice_connect_api", "sluice_connect_api::config"),
    ("sluice_connect_api", "sluice_connect_api::connector"),
    ("sluice_connect_api", "sluice_connect_api::date_format"),
    ("sluice_connect_api", "sluice_connect_api::error"),
    ("sluice_connect_api", "sluice_connect_api::plugin"),
    ("sluice_connect_api", "sluice_connect_api::record"),
    ("sluice_connect_api", "sluice_connect_api::shared"),
    ("sluice_connect_api", "sluice_connect_api::values"),
    ("sluice_connector_file", "sluice_connector_file"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::connection"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::sink"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::sink::config"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::sink::types"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::sink::write"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::source"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::source::db"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::source::values"),
    ("sluice_connector_jdbc", "sluice_connector_jdbc::zone"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::config"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::ddl"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::envelope"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::history"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::schema_change"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::snapshot"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::split"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::task"),
    ("sluice_connector_mysql_cdc", "sluice_connector_mysql_cdc::types"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::config"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::defaults"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::message"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::pgoutput"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::repl"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::snapshot"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::split"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::task"),
    ("sluice_connector_postgres_cdc", "sluice_connector_postgres_cdc::types"),
    ("sluice_connector_s3", "sluice_connector_s3"),
    ("sluice_connector_s3", "sluice_connector_s3::avro"),
    ("sluice_connector_s3", "sluice_connector_s3::client"),
    ("sluice_connector_s3", "sluice_connector_s3::format"),
    ("sluice_connector_s3", "sluice_connector_s3::layout"),
    ("sluice_connector_s3", "sluice_connector_s3::parquet_file"),
    ("sluice_connector_s3", "sluice_connector_s3::task"),
    ("sluice_connectors", "sluice_connectors"),
    ("sluice_connectors", "sluice_connectors::registry"),
    ("sluice_connectors", "sluice_connectors::topic_creation"),
    ("sluice_control_plane", "sluice_control_plane"),
    ("sluice_control_plane", "sluice_control_plane::admin_grpc"),
    ("sluice_control_plane", "sluice_control_plane::agent_auth"),
    ("sluice_control_plane", "sluice_control_plane::api"),
    ("sluice_control_plane", "sluice_control_plane::auth"),
    ("sluice_control_plane", "sluice_control_plane::connections"),
    ("sluice_control_plane", "sluice_control_plane::deadline"),
    ("sluice_control_plane", "sluice_control_plane::leader"),
    ("sluice_control_plane", "sluice_control_plane::logging"),
    ("sluice_control_plane", "sluice_control_plane::metrics"),
    ("sluice_control_plane", "sluice_control_plane::model"),
    ("sluice_control_plane", "sluice_control_plane::rest"),
    ("sluice_control_plane", "sluice_control_plane::rest::body"),
    ("sluice_control_plane", "sluice_control_plane::scheduler"),
    ("sluice_control_plane", "sluice_control_plane::secrets"),
    ("sluice_control_plane", "sluice_control_plane::server"),
    ("sluice_control_plane", "sluice_control_plane::service"),
    ("sluice_control_plane", "sluice_control_plane::sink_offsets"),
    ("sluice_control_plane", "sluice_control_plane::standalone"),
    ("sluice_control_plane", "sluice_control_plane::store"),
    ("sluice_control_plane", "sluice_control_plane::store::embedded"),
    ("sluice_control_plane", "sluice_control_plane::store::etcd"),
    ("sluice_control_plane", "sluice_control_plane::store::mirror"),
    ("sluice_control_plane", "sluice_control_plane::stream"),
    ("sluice_control_plane", "sluice_control_plane::tls"),
    ("sluice_converters", "sluice_converters"),
    ("sluice_converters", "sluice_converters::config_def"),
    ("sluice_converters", "sluice_converters::converter"),
    ("sluice_converters", "sluice_converters::header_converter"),
    ("sluice_converters", "sluice_converters::json_read"),
    ("sluice_converters", "sluice_converters::primitive_converter"),
    ("sluice_debezium", "sluice_debezium"),
    ("sluice_debezium", "sluice_debezium::envelope"),
    ("sluice_debezium", "sluice_debezium::filters"),
    ("sluice_debezium", "sluice_debezium::headers"),
    ("sluice_debezium", "sluice_debezium::heartbeat"),
    ("sluice_debezium", "sluice_debezium::mapping"),
    ("sluice_debezium", "sluice_debezium::schema"),
    ("sluice_debezium", "sluice_debezium::snapshot"),
    ("sluice_debezium", "sluice_debezium::source"),
    ("sluice_debezium", "sluice_debezium::transaction"),
    ("sluice_debezium", "sluice_debezium::values"),
    ("sluice_logging", "sluice_logging"),
    ("sluice_logging", "sluice_logging::modules"),
    ("sluice_transforms", "sluice_transforms"),
    ("sluice_transforms", "sluice_transforms::cast"),
    ("sluice_transforms", "sluice_transforms::debezium"),
    ("sluice_transforms", "sluice_transforms::fields"),
    ("sluice_transforms", "sluice_transforms::headers"),
    ("sluice_transforms", "sluice_transforms::plugin_config"),
    ("sluice_transforms", "sluice_transforms::predicates"),
    ("sluice_transforms", "sluice_transforms::routing"),
    ("sluice_transforms", "sluice_transforms::support"),
    ("sluice_transforms", "sluice_transforms::timestamp"),
];

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_module_of_the_source_tree_is_listed() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
        let mut found = Vec::new();
        let mut crates: Vec<(PathBuf, String)> = ["logging", "control-plane", "agent"]
            .iter()
            .map(|dir| (workspace.join(dir), format!("sluice_{}", dir.replace('-', "_"))))
            .collect();
        // Every crate under connectors/ (the API, converters, transforms, registry and one per connector family),
        // named as its manifest says.
        for entry in std::fs::read_dir(workspace.join("connectors")).expect("connectors/").flatten() {
            let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml")).unwrap_or_default();
            let name = manifest.lines().find_map(|l| l.trim().strip_prefix("name = \"")?.strip_suffix('"'));
            if let Some(name) = name {
                crates.push((entry.path(), name.replace('-', "_")));
            }
        }
        for (dir, krate) in &crates {
            let krate = krate.as_str();
            let src = dir.join("src");
            let mut files = Vec::new();
            walk(&src, &mut files);
            for file in files {
                let relative = file.strip_prefix(&src).expect("below src");
                let mut parts: Vec<String> =
                    relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
                // Binaries and test-only modules are not loggers of a running library.
                if parts[0] == "bin" || parts.last().is_some_and(|p| p == "main") {
                    continue;
                }
                if parts.iter().any(|p| p == "tests" || p == "testing") {
                    continue;
                }
                if parts.last().is_some_and(|p| p == "lib" || p == "mod") {
                    parts.pop();
                }
                found.push((krate, std::iter::once(krate.to_string()).chain(parts).collect::<Vec<_>>().join("::")));
            }
        }
        found.sort();
        found.dedup();
        let listed: Vec<(&str, String)> = super::MODULES.iter().map(|(c, m)| (*c, m.to_string())).collect();
        let missing: Vec<String> =
            found.iter().filter(|f| !listed.contains(f)).map(|(c, m)| format!("    (\"{c}\", \"{m}\"),")).collect();
        let stale: Vec<&String> = listed.iter().filter(|l| !found.contains(l)).map(|(_, m)| m).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "add to logging/src/modules.rs:\n{}\nremove: {stale:?}",
            missing.join("\n")
        );
    }
}
