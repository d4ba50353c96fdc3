//! The connection layer shared by the JDBC sink and source: parses a JDBC URL (`jdbc:postgresql://`,
//! `jdbc:mysql://`, `jdbc:mariadb://`) plus `connection.user`/`connection.username`/`connection.password` into
//! connection parameters, builds a pool (deadpool-postgres for PostgreSQL, mysql_async's pool for MySQL/MariaDB),
//! classifies database errors into [`ConnectError`]s, and knows each dialect's identifier quoting.
//!
//! Stable API (the source relies on it): [`Dialect`], [`ConnectionParams::from_config`],
//! [`ConnectionParams::parse_url`], [`Pool::connect`], [`Pool::Postgres`]/[`Pool::MySql`], [`pg_error`],
//! [`mysql_error`].

use std::time::Duration;

use sluice_connect_api::config::ConfigMap;
use sluice_connect_api::error::ConnectError;

/// The SQL dialect a `connection.url` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    /// MySQL and MariaDB (`jdbc:mysql://`, `jdbc:mariadb://`).
    MySql,
}

impl Dialect {
    /// Kafka Connect JDBC's dialect name (`dialect.name`).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSqlDatabaseDialect",
            Dialect::MySql => "MySqlDatabaseDialect",
        }
    }

    /// The quote character for identifiers.
    pub fn quote_char(self) -> char {
        match self {
            Dialect::Postgres => '"',
            Dialect::MySql => '`',
        }
    }

    /// Appends `name` quoted (quote characters inside doubled).
    pub fn push_quoted(self, out: &mut String, name: &str) {
        let q = self.quote_char();
        out.push(q);
        for c in name.chars() {
            if c == q {
                out.push(q);
            }
            out.push(c);
        }
        out.push(q);
    }

    /// `name` quoted.
    pub fn quote(self, name: &str) -> String {
        let mut out = String::with_capacity(name.len() + 2);
        self.push_quoted(&mut out, name);
        out
    }

    /// Appends an identifier, quoted when `quote` is set (Kafka Connect's `quote.sql.identifiers=always`),
    /// otherwise as is.
    pub fn push_ident(self, out: &mut String, name: &str, quote: bool) {
        if quote {
            self.push_quoted(out, name);
        } else {
            out.push_str(name);
        }
    }

    /// Appends a possibly qualified table name (`schema.table` or `db.table`), each part quoted when `quote`.
    pub fn push_table(self, out: &mut String, table: &str, quote: bool) {
        for (i, part) in table.split('.').enumerate() {
            if i > 0 {
                out.push('.');
            }
            self.push_ident(out, part, quote);
        }
    }

    /// The placeholder of the `n`-th (1-based) bind parameter.
    pub fn push_placeholder(self, out: &mut String, n: usize) {
        match self {
            Dialect::Postgres => {
                out.push('$');
                out.push_str(&n.to_string());
            }
            Dialect::MySql => out.push('?'),
        }
    }

    /// The default port of the dialect's server.
    pub fn default_port(self) -> u16 {
        match self {
            Dialect::Postgres => 5432,
            Dialect::MySql => 3306,
        }
    }
}

/// Connection parameters parsed from the connector config.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionParams {
    pub dialect: Dialect,
    /// `jdbc:mariadb://` (a MySQL dialect server that is MariaDB).
    pub mariadb: bool,
    pub host: String,
    pub port: u16,
    /// Database name (may be empty: the server's default).
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// URL query parameters other than user/password, in order.
    pub params: Vec<(String, String)>,
    /// Pool size (at most this many connections).
    pub pool_size: usize,
}

impl std::fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("ConnectionParams")
            .field("dialect", &self.dialect)
            .field("mariadb", &self.mariadb)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[hidden]"))
            .field("params", &self.params)
            .finish()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex =
            if bytes[i] == b'%' && i + 2 < bytes.len() { std::str::from_utf8(&bytes[i + 1..i + 3]).ok() } else { None };
        if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ConnectionParams {
    /// Parses `jdbc:postgresql://host[:port]/db?k=v&...`, `jdbc:mysql://...`, `jdbc:mariadb://...`. A user or
    /// password in the URL (query `user=`/`password=` or `user:pass@host`) is taken; the config keys override it.
    pub fn parse_url(url: &str) -> Result<ConnectionParams, ConnectError> {
        let bad = |m: &str| ConnectError::config("connection.url", format!("{m}: {url}"));
        let url = url.trim();
        let rest = url.strip_prefix("jdbc:").ok_or_else(|| bad("not a JDBC URL (expected jdbc:...)"))?;
        let (dialect, mariadb, rest) = if let Some(r) = rest.strip_prefix("postgresql://") {
            (Dialect::Postgres, false, r)
        } else if let Some(r) = rest.strip_prefix("mysql://") {
            (Dialect::MySql, false, r)
        } else if let Some(r) = rest.strip_prefix("mariadb://") {
            (Dialect::MySql, true, r)
        } else {
            return Err(bad("unsupported JDBC URL (jdbc:postgresql://, jdbc:mysql:// or jdbc:mariadb:// expected)"));
        };
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        let (authority, database) = match before_query.split_once('/') {
            Some((a, d)) => (a, d),
            None => (before_query, ""),
        };
        let mut user = None;
        let mut password = None;
        let hostport = match authority.rsplit_once('@') {
            Some((cred, hp)) => {
                match cred.split_once(':') {
                    Some((u, p)) => {
                        user = Some(percent_decode(u));
                        password = Some(percent_decode(p));
                    }
                    None => user = Some(percent_decode(cred)),
                }
                hp
            }
            None => authority,
        };
        // Only the first host of a multi-host URL.
        let hostport = hostport.split(',').next().unwrap_or("");
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h.split_once(']').ok_or_else(|| bad("bad IPv6 host"))?;
            (h.to_string(), p.strip_prefix(':').unwrap_or(""))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (hostport.to_string(), ""),
            }
        };
        let port =
            if port.is_empty() { dialect.default_port() } else { port.parse::<u16>().map_err(|_| bad("bad port"))? };
        let host = if host.is_empty() { "localhost".to_string() } else { host };
        let mut params = Vec::new();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let (k, v) = (percent_decode(k), percent_decode(v));
            match k.as_str() {
                "user" => user = Some(v),
                "password" => password = Some(v),
                _ => params.push((k, v)),
            }
        }
        Ok(ConnectionParams {
            dialect,
            mariadb,
            host,
            port,
            database: percent_decode(database),
            user,
            password,
            params,
            pool_size: 4,
        })
    }

    /// From a connector config: `connection.url` plus `connection.user` (Confluent) or `connection.username`
    /// (Debezium) and `connection.password`; `connection.pool.max_size` (Debezium) sets the pool size.
    pub fn from_config(config: &ConfigMap) -> Result<ConnectionParams, ConnectError> {
        let url = config
            .get("connection.url")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ConnectError::config("connection.url", "missing required configuration"))?;
        let mut p = ConnectionParams::parse_url(url)?;
        let nonempty = |k: &str| config.get(k).filter(|s| !s.is_empty()).cloned();
        if let Some(u) = nonempty("connection.user").or_else(|| nonempty("connection.username")) {
            p.user = Some(u);
        }
        if let Some(pw) = nonempty("connection.password") {
            p.password = Some(pw);
        }
        if let Some(n) = config.get("connection.pool.max_size").and_then(|s| s.trim().parse::<usize>().ok()) {
            p.pool_size = n.clamp(1, 64);
        }
        Ok(p)
    }

    /// A URL parameter (`currentSchema`, `ApplicationName`, ...).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host).port(self.port).connect_timeout(Duration::from_secs(10));
        if !self.database.is_empty() {
            c.dbname(&self.database);
        }
        if let Some(u) = &self.user {
            c.user(u);
        }
        if let Some(pw) = &self.password {
            c.password(pw);
        }
        c.application_name(self.param("ApplicationName").unwrap_or("sluice-jdbc"));
        // Sessions run in UTC: `db.timezone` conversions are made client-side (crate::zone), as the originals' drivers
        // make them with a Calendar.
        match self.param("currentSchema") {
            Some(schema) => c.options(format!("-c TimeZone=UTC -c search_path={schema}")),
            None => c.options("-c TimeZone=UTC"),
        };
        c
    }

    fn mysql_opts(&self) -> mysql_async::Opts {
        let constraints = mysql_async::PoolConstraints::new(0, self.pool_size.max(1)).expect("0 <= max");
        let builder = mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(self.user.clone())
            .pass(self.password.clone())
            .db_name(if self.database.is_empty() { None } else { Some(self.database.clone()) })
            .prefer_socket(false)
            // Sessions run in UTC (as a server in UTC): `db.timezone` conversions are made client-side (crate::zone).
            .init(vec!["SET time_zone = '+00:00'"])
            .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints));
        builder.into()
    }
}

/// A connection pool on the configured database.
#[derive(Clone)]
pub enum Pool {
    Postgres(deadpool_postgres::Pool),
    MySql(mysql_async::Pool),
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pool::Postgres(_) => f.write_str("Pool::Postgres"),
            Pool::MySql(_) => f.write_str("Pool::MySql"),
        }
    }
}

impl Pool {
    /// Builds the pool (lazily connecting: the first checkout opens a connection).
    pub fn connect(params: &ConnectionParams) -> Result<Pool, ConnectError> {
        match params.dialect {
            Dialect::Postgres => {
                let manager = deadpool_postgres::Manager::from_config(
                    params.pg_config(),
                    tokio_postgres::NoTls,
                    deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
                );
                let pool = deadpool_postgres::Pool::builder(manager)
                    .max_size(params.pool_size.max(1))
                    .build()
                    .map_err(|e| ConnectError::Other(format!("building the PostgreSQL pool: {e}")))?;
                Ok(Pool::Postgres(pool))
            }
            Dialect::MySql => Ok(Pool::MySql(mysql_async::Pool::new(params.mysql_opts()))),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::MySql(_) => Dialect::MySql,
        }
    }

    /// A PostgreSQL connection from the pool (retriable error when the server cannot be reached).
    pub async fn pg(&self) -> Result<deadpool_postgres::Object, ConnectError> {
        match self {
            Pool::Postgres(p) => p.get().await.map_err(|e| ConnectError::retriable("connecting to PostgreSQL", e)),
            Pool::MySql(_) => Err(ConnectError::Other("not a PostgreSQL pool".into())),
        }
    }

    /// A MySQL/MariaDB connection from the pool (retriable error when the server cannot be reached).
    pub async fn mysql(&self) -> Result<mysql_async::Conn, ConnectError> {
        match self {
            Pool::MySql(p) => p.get_conn().await.map_err(|e| mysql_error("connecting to MySQL", e)),
            Pool::Postgres(_) => Err(ConnectError::Other("not a MySQL pool".into())),
        }
    }

    /// Closes the pool.
    pub async fn close(self) {
        match self {
            Pool::Postgres(p) => p.close(),
            Pool::MySql(p) => {
                let _ = p.disconnect().await;
            }
        }
    }
}

/// Classifies a PostgreSQL error: a rejected row (SQLSTATE classes 22 data exception, 23 integrity constraint
/// violation) is [`ConnectError::Data`] (the runtime then isolates the bad record); no SQLSTATE (connection lost,
/// I/O) or classes 08 (connection), 40 (serialization/deadlock), 53 (resources), 57 (operator intervention: admin
/// shutdown) are retriable; anything else (syntax, undefined table/column) is fatal.
pub fn pg_error(context: &str, e: tokio_postgres::Error) -> ConnectError {
    let Some(db) = e.as_db_error() else {
        return ConnectError::retriable(context, e);
    };
    let code = db.code().code();
    let message = format!("{context}: {} (SQLSTATE {code})", describe_pg(db));
    match &code[..2] {
        "22" | "23" => ConnectError::Data(message),
        "08" | "40" | "53" | "57" | "58" => ConnectError::retriable(context.to_string(), e),
        _ => ConnectError::fatal(context.to_string(), e),
    }
}

fn describe_pg(db: &tokio_postgres::error::DbError) -> String {
    let mut s = format!("ERROR: {}", db.message());
    if let Some(d) = db.detail() {
        s.push_str("\n  Detail: ");
        s.push_str(d);
    }
    s
}

/// Classifies a MySQL/MariaDB error like [`pg_error`]: server errors about rejected data (duplicate key, NULL into
/// NOT NULL, out of range, too long, bad value, foreign key) are [`ConnectError::Data`]; I/O and driver errors are
/// retriable; other server errors are fatal.
pub fn mysql_error(context: &str, e: mysql_async::Error) -> ConnectError {
    match &e {
        mysql_async::Error::Server(se) => {
            let data_codes = [
                1048, // column cannot be null
                1062, // duplicate entry
                1264, // out of range
                1265, // data truncated
                1292, // incorrect value
                1366, // incorrect integer/string value
                1406, // data too long
                1416, // cannot get geometry object
                1451, 1452, // foreign key
                1690, // value out of range
                3819, // check constraint
                4025, // MariaDB check constraint
            ];
            if data_codes.contains(&(se.code as u32)) || se.state.starts_with("22") || se.state.starts_with("23") {
                ConnectError::Data(format!("{context}: {} (error {}, SQLSTATE {})", se.message, se.code, se.state))
            } else if matches!(se.code, 1205 | 1213 | 1040 | 1053 | 2006 | 2013 | 1927) {
                ConnectError::retriable(context.to_string(), e)
            } else {
                ConnectError::fatal(context.to_string(), e)
            }
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ConnectError::retriable(context.to_string(), e),
        _ => ConnectError::fatal(context.to_string(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_url() {
        let p =
            ConnectionParams::parse_url("jdbc:postgresql://db.example:6543/shop?currentSchema=s1&user=u&password=p%40")
                .unwrap();
        assert_eq!(p.dialect, Dialect::Postgres);
        assert_eq!((p.host.as_str(), p.port, p.database.as_str()), ("db.example", 6543, "shop"));
        assert_eq!(p.user.as_deref(), Some("u"));
        assert_eq!(p.password.as_deref(), Some("p@"));
        assert_eq!(p.param("currentSchema"), Some("s1"));
        assert!(!format!("{p:?}").contains("p@"));
    }

    #[test]
    fn parses_mysql_and_mariadb_urls() {
        let p = ConnectionParams::parse_url("jdbc:mysql://127.0.0.1/inventory").unwrap();
        assert_eq!((p.dialect, p.port, p.mariadb), (Dialect::MySql, 3306, false));
        let p = ConnectionParams::parse_url("jdbc:mariadb://h:3307/d?useSSL=false").unwrap();
        assert_eq!((p.dialect, p.port, p.mariadb), (Dialect::MySql, 3307, true));
        assert_eq!(p.param("useSSL"), Some("false"));
        assert!(ConnectionParams::parse_url("jdbc:oracle:thin:@x").is_err());
        assert!(ConnectionParams::parse_url("postgresql://x/y").is_err());
    }

    #[test]
    fn config_keys_override_url() {
        let mut c = ConfigMap::new();
        c.insert("connection.url".into(), "jdbc:postgresql://h/d?user=a".into());
        c.insert("connection.username".into(), "b".into());
        c.insert("connection.password".into(), "secret".into());
        let p = ConnectionParams::from_config(&c).unwrap();
        assert_eq!(p.user.as_deref(), Some("b"));
        c.insert("connection.user".into(), "c".into());
        assert_eq!(ConnectionParams::from_config(&c).unwrap().user.as_deref(), Some("c"));
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(Dialect::Postgres.quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::MySql.quote("t"), "`t`");
        let mut s = String::new();
        Dialect::Postgres.push_table(&mut s, "public.t", true);
        assert_eq!(s, "\"public\".\"t\"");
    }
}
