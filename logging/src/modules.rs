//! Every module of Sluice's crates: the loggers `GET /admin/loggers` lists (tracing targets are module paths), as
//! Kafka Connect lists its loggers. Kept in step with the source tree by the test below, which names what to add.

/// (crate, module) of every module of the workspace's library crates.
pub const MODULES: &[(&str, &str)] = &[
    ("sluice_agent", "sluice_agent"),
    ("sluice_agent", "sluice_agent::fence"),
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
    ("sluice_agent", "sluice_agent::runtime::sink"),
    ("sluice_agent", "sluice_agent::runtime::source"),
    ("sluice_agent", "sluice_agent::runtime::topics"),
    ("sluice_agent", "sluice_agent::session"),
    ("sluice_agent", "sluice_agent::supervisor"),
    ("sluice_connectors", "sluice_connectors"),
    ("sluice_connectors", "sluice_connectors::config"),
    ("sluice_connectors", "sluice_connectors::connector"),
    ("sluice_connectors", "sluice_connectors::converter"),
    ("sluice_connectors", "sluice_connectors::error"),
    ("sluice_connectors", "sluice_connectors::file"),
    ("sluice_connectors", "sluice_connectors::header_converter"),
    ("sluice_connectors", "sluice_connectors::primitive_converter"),
    ("sluice_connectors", "sluice_connectors::record"),
    ("sluice_connectors", "sluice_connectors::registry"),
    ("sluice_connectors", "sluice_connectors::topic_creation"),
    ("sluice_connectors", "sluice_connectors::transforms"),
    ("sluice_connectors", "sluice_connectors::transforms::cast"),
    ("sluice_connectors", "sluice_connectors::transforms::date_format"),
    ("sluice_connectors", "sluice_connectors::transforms::fields"),
    ("sluice_connectors", "sluice_connectors::transforms::headers"),
    ("sluice_connectors", "sluice_connectors::transforms::plugin_config"),
    ("sluice_connectors", "sluice_connectors::transforms::predicates"),
    ("sluice_connectors", "sluice_connectors::transforms::routing"),
    ("sluice_connectors", "sluice_connectors::transforms::support"),
    ("sluice_connectors", "sluice_connectors::transforms::timestamp"),
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
    ("sluice_logging", "sluice_logging"),
    ("sluice_logging", "sluice_logging::modules"),
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
        for (dir, krate) in [
            ("logging", "sluice_logging"),
            ("connectors", "sluice_connectors"),
            ("control-plane", "sluice_control_plane"),
            ("agent", "sluice_agent"),
        ] {
            let src = workspace.join(dir).join("src");
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
