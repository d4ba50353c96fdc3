//! Kafka Connect's config providers, resolved on the agent only, right before a task starts: a connector config
//! value such as `${env:DB_PASSWORD}` or `${file:/etc/sluice/db.properties:password}` becomes the secret it names
//! here, so the control plane stores, shows and logs the reference, never the secret.
//!
//! As in Kafka Connect, none is on unless the worker properties list it: `config.providers=file,env` with
//! `config.providers.<alias>.class` one of `FileConfigProvider` (a Java properties file and a key in it),
//! `DirectoryConfigProvider` (a file in a directory, its whole content) and `EnvVarConfigProvider` (a variable).
//! Their allow-lists are Kafka's too: `config.providers.<alias>.param.allowed.paths` (comma-separated directories;
//! the file and directory providers read nothing outside them) and `config.providers.<alias>.param.allowlist.pattern`
//! (a regex the whole variable name must match). Anyone who can write a connector config can make a task read
//! whatever a provider allows, into records that reach Kafka: allow only what connectors need.
//!
//! Unlike Kafka Connect, which leaves an unresolvable reference in the value, a reference that cannot be resolved
//! fails the task with a message that says which key and why (never the value that was read).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::TaskError;

const ENV_CLASS: &str = "org.apache.kafka.common.config.provider.EnvVarConfigProvider";
const FILE_CLASS: &str = "org.apache.kafka.common.config.provider.FileConfigProvider";
const DIRECTORY_CLASS: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";

#[derive(Debug, Clone)]
enum Provider {
    /// Environment variables whose whole name matches the pattern (all without one).
    Env { allowlist: Option<regex::Regex> },
    /// Keys of properties files under the allowed paths (anywhere without them).
    File { allowed: Option<Vec<PathBuf>> },
    /// Whole files directly in directories under the allowed paths (anywhere without them).
    Directory { allowed: Option<Vec<PathBuf>> },
}

/// The providers a worker offers, by alias.
#[derive(Debug, Clone)]
pub(crate) struct ConfigProviders {
    providers: BTreeMap<String, Provider>,
}

impl ConfigProviders {
    /// The aliases of `config.providers` in the worker properties, with their classes and allow-lists; none when
    /// the key is absent. An alias without a supported class, or with a bad allow-list, is an error.
    pub fn from_worker(raw: &BTreeMap<String, String>) -> Result<Self, TaskError> {
        let mut providers = BTreeMap::new();
        let aliases = raw.get("config.providers").map(String::as_str).unwrap_or_default();
        for alias in aliases.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let key = format!("config.providers.{alias}.class");
            let class = raw.get(&key).map(|c| c.trim()).unwrap_or_default();
            let param = |name: &str| {
                let key = format!("config.providers.{alias}.param.{name}");
                raw.get(&key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).map(|v| (key, v))
            };
            let allowed_paths = || -> Result<Option<Vec<PathBuf>>, TaskError> {
                let Some((key, value)) = param("allowed.paths") else { return Ok(None) };
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let path = Path::new(p);
                        if !path.is_absolute() {
                            return Err(TaskError::Config {
                                key: key.clone(),
                                message: format!("`{p}` is not an absolute path"),
                            });
                        }
                        // Symbolic links and `..` resolved once here, and in every path checked against it.
                        Ok(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            };
            let provider = match class {
                ENV_CLASS | "EnvVarConfigProvider" => {
                    let allowlist = match param("allowlist.pattern") {
                        None => None,
                        Some((key, pattern)) => Some(regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                            TaskError::Config { key, message: format!("not a regular expression: {e}") }
                        })?),
                    };
                    Provider::Env { allowlist }
                }
                FILE_CLASS | "FileConfigProvider" => Provider::File { allowed: allowed_paths()? },
                DIRECTORY_CLASS | "DirectoryConfigProvider" => Provider::Directory { allowed: allowed_paths()? },
                "" => {
                    return Err(TaskError::Config { key, message: format!("config provider `{alias}` has no class") });
                }
                other => {
                    return Err(TaskError::Config {
                        key,
                        message: format!(
                            "config provider class `{other}` is not supported; supported: {FILE_CLASS}, \
                             {DIRECTORY_CLASS}, {ENV_CLASS}"
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
                let offered = if self.providers.is_empty() {
                    "none: the worker properties list no `config.providers`".to_string()
                } else {
                    self.providers.keys().cloned().collect::<Vec<_>>().join(", ")
                };
                return Err(fail(format!(
                    "`${{{reference}}}` names config provider `{alias}`, which the worker does not offer (offered: \
                     {offered})"
                )));
            };
            let resolved = match provider {
                Provider::Env { allowlist } => {
                    if allowlist.as_ref().is_some_and(|pattern| !pattern.is_match(name)) {
                        return Err(fail(format!(
                            "`${{{reference}}}`: environment variable `{name}` is not allowed by \
                             config.providers.{alias}.param.allowlist.pattern"
                        )));
                    }
                    std::env::var(name)
                        .map_err(|_| fail(format!("`${{{reference}}}`: environment variable `{name}` is not set")))?
                }
                Provider::File { allowed } => {
                    if path.is_empty() {
                        return Err(fail(format!("`${{{reference}}}`: expected `${{{alias}:/path/to/file:key}}`")));
                    }
                    let file = allowed_file(Path::new(path), allowed.as_deref()).map_err(|why| {
                        fail(format!("`${{{reference}}}`: {why} (config.providers.{alias}.param.allowed.paths)"))
                    })?;
                    if !files.contains_key(path) {
                        let text = std::fs::read_to_string(&file)
                            .map_err(|e| fail(format!("`${{{reference}}}`: cannot read `{path}`: {e}")))?;
                        files.insert(path.to_string(), crate::parse_properties(&text));
                    }
                    files
                        .get(path)
                        .and_then(|entries| entries.get(name))
                        .cloned()
                        .ok_or_else(|| fail(format!("`${{{reference}}}`: `{path}` has no key `{name}`")))?
                }
                Provider::Directory { allowed } => {
                    if path.is_empty() || name.is_empty() || name.contains('/') || name == "." || name == ".." {
                        return Err(fail(format!(
                            "`${{{reference}}}`: expected `${{{alias}:/path/to/directory:file-name}}`"
                        )));
                    }
                    let file = allowed_file(&Path::new(path).join(name), allowed.as_deref()).map_err(|why| {
                        fail(format!("`${{{reference}}}`: {why} (config.providers.{alias}.param.allowed.paths)"))
                    })?;
                    if !file.is_file() {
                        return Err(fail(format!("`${{{reference}}}`: `{path}` has no file `{name}`")));
                    }
                    std::fs::read_to_string(&file)
                        .map_err(|e| fail(format!("`${{{reference}}}`: cannot read `{name}` in `{path}`: {e}")))?
                }
            };
            out.push_str(&resolved);
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `path`, resolved (symbolic links, `..`), if it lies under one of `allowed` (or anywhere when `allowed` is
/// `None`); else why not.
fn allowed_file(path: &Path, allowed: Option<&[PathBuf]>) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!("`{}` is not an absolute path", path.display()));
    }
    let Some(allowed) = allowed else { return Ok(path.to_path_buf()) };
    let resolved = std::fs::canonicalize(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    if allowed.iter().any(|dir| resolved.starts_with(dir)) {
        Ok(resolved)
    } else {
        Err(format!("`{}` is outside the allowed paths", path.display()))
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

    fn resolve(providers: &ConfigProviders, value: &str) -> Result<String, String> {
        let mut config = HashMap::from([("k".to_string(), value.to_string())]);
        providers.resolve(&mut config).map_err(|e| e.to_string())?;
        Ok(config.remove("k").unwrap_or_default())
    }

    /// Issue 13, finding 2: with no `config.providers` in the worker properties, no reference reads anything.
    #[test]
    fn no_provider_is_on_unless_listed() {
        let providers = ConfigProviders::from_worker(&BTreeMap::new()).expect("providers");
        for reference in ["${file:/etc/passwd:root}", "${env:PATH}", "${directory:/etc:hostname}"] {
            let err = resolve(&providers, reference).expect_err(reference);
            assert!(err.contains("the worker properties list no `config.providers`"), "{err}");
            assert!(!err.contains("/bin/"), "{err}");
        }
        assert_eq!(resolve(&providers, "no $ref {here}").expect("plain"), "no $ref {here}");
    }

    #[test]
    fn listed_providers_resolve_within_their_allow_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).expect("mkdir");
        let file = secrets.join("db.properties");
        std::fs::write(&file, "user=app\npassword=s3cr3t\n").expect("write");
        std::fs::write(secrets.join("token"), "t0k3n").expect("write");
        let outside = dir.path().join("outside.properties");
        std::fs::write(&outside, "password=nope\n").expect("write");
        let worker = map(&[
            ("config.providers", "file,dir,env"),
            ("config.providers.file.class", FILE_CLASS),
            ("config.providers.file.param.allowed.paths", &secrets.display().to_string()),
            ("config.providers.dir.class", "DirectoryConfigProvider"),
            ("config.providers.dir.param.allowed.paths", &secrets.display().to_string()),
            ("config.providers.env.class", ENV_CLASS),
            ("config.providers.env.param.allowlist.pattern", "PATH|SLUICE_.*"),
        ]);
        let providers = ConfigProviders::from_worker(&worker).expect("providers");
        let f = file.display();
        assert_eq!(resolve(&providers, &format!("${{file:{f}:password}}")).expect("file"), "s3cr3t");
        assert_eq!(
            resolve(&providers, &format!("jdbc://${{file:{f}:user}}@db/${{env:PATH}}")).expect("mixed"),
            format!("jdbc://app@db/{}", std::env::var("PATH").expect("PATH"))
        );
        assert_eq!(resolve(&providers, &format!("${{dir:{}:token}}", secrets.display())).expect("dir"), "t0k3n");
        // Outside the allowed paths, also through `..`: refused, and the error carries nothing that was read.
        for reference in [
            "${file:/etc/passwd:root}".to_string(),
            format!("${{file:{}:password}}", outside.display()),
            format!("${{file:{}/../outside.properties:password}}", secrets.display()),
            format!("${{dir:{}:outside.properties}}", dir.path().display()),
            format!("${{dir:{}:../outside.properties}}", secrets.display()),
            "${env:HOME}".to_string(),
            "${env:PATHX}".to_string(),
        ] {
            let err = resolve(&providers, &reference).expect_err(&reference);
            assert!(!err.contains("nope") && !err.contains("/bin/"), "{err}");
        }
    }

    #[test]
    fn a_listed_provider_without_allow_list_reads_anywhere_as_in_kafka_connect() {
        let worker = map(&[("config.providers", "secrets"), ("config.providers.secrets.class", FILE_CLASS)]);
        let providers = ConfigProviders::from_worker(&worker).expect("providers");
        let err = resolve(&providers, "${secrets:/no/such/file:key}").expect_err("missing file");
        assert!(err.contains("`k`") && err.contains("/no/such/file"), "{err}");
        let err = resolve(&providers, "${vault:/a:b}").expect_err("unknown");
        assert!(err.contains("vault") && err.contains("secrets"), "{err}");
    }

    #[test]
    fn bad_provider_settings_are_errors() {
        for bad in [
            map(&[("config.providers", "v"), ("config.providers.v.class", "com.example.Vault")]),
            map(&[("config.providers", "v")]),
            map(&[
                ("config.providers", "f"),
                ("config.providers.f.class", FILE_CLASS),
                ("config.providers.f.param.allowed.paths", "relative/dir"),
            ]),
            map(&[
                ("config.providers", "e"),
                ("config.providers.e.class", ENV_CLASS),
                ("config.providers.e.param.allowlist.pattern", "("),
            ]),
        ] {
            assert!(ConfigProviders::from_worker(&bad).is_err(), "{bad:?}");
        }
    }
}
