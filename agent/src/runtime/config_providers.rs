//! Kafka Connect's config providers, resolved on the agent only, right before a task starts: a connector config
//! value such as `${env:DB_PASSWORD}` or `${file:/etc/sluice/db.properties:password}` becomes the secret it names
//! here, so the control plane stores, shows and logs the reference, never the secret.
//!
//! `env` (EnvVarConfigProvider) and `file` (FileConfigProvider: a Java properties file and a key in it) are on by
//! default. Kafka Connect's worker properties `config.providers=a,b` with `config.providers.a.class=...` add
//! aliases for the same two providers. Unlike Kafka Connect, which leaves an unresolvable reference in the value,
//! a reference that cannot be resolved fails the task with a message that says which key and why.

use std::collections::{BTreeMap, HashMap};

use super::TaskError;

const ENV_CLASS: &str = "org.apache.kafka.common.config.provider.EnvVarConfigProvider";
const FILE_CLASS: &str = "org.apache.kafka.common.config.provider.FileConfigProvider";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provider {
    Env,
    File,
}

/// The providers a worker offers, by alias.
#[derive(Debug, Clone)]
pub(crate) struct ConfigProviders {
    providers: BTreeMap<String, Provider>,
}

impl ConfigProviders {
    /// `env` and `file`, plus the aliases of `config.providers` in the worker properties. An alias whose class is not
    /// one of the two is an error.
    pub fn from_worker(raw: &BTreeMap<String, String>) -> Result<Self, TaskError> {
        let mut providers = BTreeMap::from([("env".to_string(), Provider::Env), ("file".to_string(), Provider::File)]);
        let aliases = raw.get("config.providers").map(String::as_str).unwrap_or_default();
        for alias in aliases.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let key = format!("config.providers.{alias}.class");
            let class = raw.get(&key).map(|c| c.trim()).unwrap_or_default();
            let provider = match class {
                ENV_CLASS | "EnvVarConfigProvider" => Provider::Env,
                FILE_CLASS | "FileConfigProvider" => Provider::File,
                "" => {
                    return Err(TaskError::Config { key, message: format!("config provider `{alias}` has no class") });
                }
                other => {
                    return Err(TaskError::Config {
                        key,
                        message: format!(
                            "config provider class `{other}` is not supported; supported: {ENV_CLASS}, {FILE_CLASS}"
                        ),
                    });
                }
            };
            providers.insert(alias.to_string(), provider);
        }
        Ok(ConfigProviders { providers })
    }

    /// Resolves every reference in every value of `config`, in place.
    pub fn resolve(&self, config: &mut HashMap<String, String>) -> Result<(), TaskError> {
        let mut files: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for (key, value) in config.iter_mut() {
            if value.contains("${") {
                *value = self.resolve_value(key, value, &mut files)?;
            }
        }
        Ok(())
    }

    fn resolve_value(
        &self,
        key: &str,
        value: &str,
        files: &mut HashMap<String, BTreeMap<String, String>>,
    ) -> Result<String, TaskError> {
        let fail = |message: String| TaskError::Config { key: key.to_string(), message };
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let reference = &after[..end];
            rest = &after[end + 1..];
            // `${provider:[path:]key}`, as Kafka's ConfigTransformer reads it.
            let Some((alias, path_and_key)) = reference.split_once(':') else {
                out.push_str("${");
                out.push_str(reference);
                out.push('}');
                continue;
            };
            let (path, name) = match path_and_key.rsplit_once(':') {
                Some((path, name)) => (path, name),
                None => ("", path_and_key),
            };
            let Some(provider) = self.providers.get(alias) else {
                return Err(fail(format!(
                    "`${{{reference}}}` names config provider `{alias}`, which the worker does not offer (offered: {})",
                    self.providers.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            };
            let resolved = match provider {
                Provider::Env => std::env::var(name)
                    .map_err(|_| fail(format!("`${{{reference}}}`: environment variable `{name}` is not set")))?,
                Provider::File => {
                    if path.is_empty() {
                        return Err(fail(format!("`${{{reference}}}`: expected `${{{alias}:/path/to/file:key}}`")));
                    }
                    if !files.contains_key(path) {
                        let text = std::fs::read_to_string(path)
                            .map_err(|e| fail(format!("`${{{reference}}}`: cannot read `{path}`: {e}")))?;
                        files.insert(path.to_string(), crate::parse_properties(&text));
                    }
                    files
                        .get(path)
                        .and_then(|entries| entries.get(name))
                        .cloned()
                        .ok_or_else(|| fail(format!("`${{{reference}}}`: `{path}` has no key `{name}`")))?
                }
            };
            out.push_str(&resolved);
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Resolves the references in a task's connector and task configs, with the worker's providers.
pub(crate) fn resolve_assignment(
    worker: &BTreeMap<String, String>,
    assignment: &mut sluice_proto::agent::TaskAssignment,
) -> Result<(), TaskError> {
    let providers = ConfigProviders::from_worker(worker)?;
    providers.resolve(&mut assignment.connector_config)?;
    providers.resolve(&mut assignment.task_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_and_file_references_resolve_by_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("db.properties");
        std::fs::write(&file, "user=app\npassword=s3cr3t\n").expect("write");
        // SAFETY-free: `PATH` is always set in a test environment.
        let path_var = std::env::var("PATH").expect("PATH");
        let providers = ConfigProviders::from_worker(&BTreeMap::new()).expect("providers");
        let mut config: HashMap<String, String> = HashMap::from([
            ("connection.password".to_string(), format!("${{file:{}:password}}", file.display())),
            ("url".to_string(), format!("jdbc://${{file:{}:user}}@db/${{env:PATH}}", file.display())),
            ("plain".to_string(), "no $ref {here}".to_string()),
        ]);
        providers.resolve(&mut config).expect("resolve");
        assert_eq!(config["connection.password"], "s3cr3t");
        assert_eq!(config["url"], format!("jdbc://app@db/{path_var}"));
        assert_eq!(config["plain"], "no $ref {here}");
    }

    #[test]
    fn kafka_style_aliases_and_clear_errors() {
        let worker = map(&[("config.providers", "secrets"), ("config.providers.secrets.class", FILE_CLASS)]);
        let providers = ConfigProviders::from_worker(&worker).expect("providers");
        let mut config = HashMap::from([("k".to_string(), "${secrets:/no/such/file:key}".to_string())]);
        let err = providers.resolve(&mut config).expect_err("missing file").to_string();
        assert!(err.contains("`k`") && err.contains("/no/such/file"), "{err}");
        let mut config = HashMap::from([("k".to_string(), "${vault:/a:b}".to_string())]);
        let err = providers.resolve(&mut config).expect_err("unknown").to_string();
        assert!(err.contains("vault") && err.contains("secrets"), "{err}");
        let mut config = HashMap::from([("k".to_string(), "${env:SLUICE_SURELY_NOT_SET_42}".to_string())]);
        assert!(providers.resolve(&mut config).is_err());
        let bad = map(&[("config.providers", "v"), ("config.providers.v.class", "com.example.Vault")]);
        assert!(ConfigProviders::from_worker(&bad).is_err());
    }
}
