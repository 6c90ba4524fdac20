//! The gateway's secret, from wherever OpenClaw takes it, so ClawFleet can
//! connect as a read-only operator.
//!
//! OpenClaw 2026.9 (`auth-resolve-*.mjs`, `resolve-*.mjs`): the mode is
//! `gateway.auth.mode`, else `password` when a password is set, else
//! `token`. The secret is the config's (`gateway.auth.token` or
//! `.password`) before the environment's (`OPENCLAW_GATEWAY_TOKEN`,
//! `OPENCLAW_GATEWAY_PASSWORD`). A config value is a string, where
//! `${NAME}` is replaced by the variable (and `$${` is a literal `${`) and a
//! whole `"$NAME"` is the variable; or a secret reference `{source,
//! provider, id}`:
//! - `env`: a variable;
//! - `file`: a value in a file named by `secrets.providers.<provider>`
//!   (`mode: "json"` with a JSON pointer as `id`, or `"singleValue"`); the
//!   file must be a regular file, not a link, private to its owner (no
//!   group or other bits), owned by this user, and at most `maxBytes`;
//! - `exec` and `store` are not read: one runs a command, the other is
//!   OpenClaw's own store. The gateway is then asked through `openclaw
//!   health --json`, which resolves them itself.
//!
//! The gateway's environment may differ from ClawFleet's: a variable is
//! looked for here, then in the files OpenClaw's service and gateway load
//! (`<state>/gateway.systemd.env`, `<state>/.env`,
//! `~/.config/openclaw/gateway.env`).
//!
//! The secret lives only in [`Credential`], whose `Debug` hides it, and is
//! sent only to the gateway on loopback.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::config::GatewayAuth;
use super::locate::Environment;

/// The largest secret file or `.env` file read.
const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// A secret to send in `connect`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Sent as `auth.password` (else `auth.token`).
    pub password: bool,
    /// The secret.
    pub secret: String,
    /// Where it came from, in words (`gateway.auth.token in openclaw.json`).
    pub source: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("password", &self.password)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What authenticating to the gateway takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// This secret.
    Secret(Credential),
    /// Nothing: `gateway.auth.mode` is `none`.
    Open,
    /// A secret ClawFleet cannot read itself (why, in words); the CLI can.
    Unreadable(String),
    /// No secret anywhere (where it was looked for).
    Missing(String),
}

impl Auth {
    /// How ClawFleet authenticates, for the snapshot: never the secret.
    pub fn describe(&self) -> String {
        match self {
            Auth::Secret(c) => format!(
                "{} from {}",
                if c.password { "password" } else { "token" },
                c.source
            ),
            Auth::Open => "none (gateway.auth.mode is \"none\")".to_owned(),
            Auth::Unreadable(why) | Auth::Missing(why) => why.clone(),
        }
    }
}

/// Where a variable of the gateway's environment is looked for, in order:
/// this process, then the files OpenClaw's service and gateway load.
pub struct GatewayEnv<'a> {
    env: &'a Environment,
    files: Vec<(PathBuf, Vec<(String, String)>)>,
}

impl<'a> GatewayEnv<'a> {
    /// The environment files of the install at `state_dir`.
    pub fn new(env: &'a Environment, state_dir: &Path) -> GatewayEnv<'a> {
        let mut paths = vec![
            state_dir.join("gateway.systemd.env"),
            state_dir.join(".env"),
        ];
        if let Some(home) = env.home() {
            paths.push(home.join(".config").join("openclaw").join("gateway.env"));
        }
        let files = paths
            .into_iter()
            .filter_map(|p| {
                let bytes = crate::outside::read(&p, MAX_SECRET_FILE).ok()?;
                let pairs = dotenvy::from_read_iter(bytes.as_slice())
                    .filter_map(Result::ok)
                    .collect();
                Some((p, pairs))
            })
            .collect();
        GatewayEnv { env, files }
    }

    /// `name` and where it was found.
    fn get(&self, name: &str) -> Option<(String, String)> {
        if let Some(v) = self.env.get(name) {
            return Some((v, format!("${name}")));
        }
        self.files.iter().find_map(|(path, pairs)| {
            pairs
                .iter()
                .find(|(k, v)| k == name && !v.trim().is_empty())
                .map(|(_, v)| (v.trim().to_owned(), format!("{name} in {}", path.display())))
        })
    }
}

/// Resolves `auth` (read from the config at `config_file`).
pub fn resolve(auth: &GatewayAuth, genv: &GatewayEnv, config_file: &str) -> Auth {
    let mode = auth.mode.as_deref().map(str::trim);
    match mode {
        Some("none") => return Auth::Open,
        Some("trusted-proxy") => {
            return Auth::Unreadable(
                "gateway.auth.mode is \"trusted-proxy\": only the proxy in front of the gateway can authenticate"
                    .to_owned(),
            );
        }
        _ => {}
    }
    let from_config = |field: &str, value: &Option<Value>| -> Option<Result<Credential, Auth>> {
        let value = value.as_ref()?;
        let key = format!("gateway.auth.{field}");
        Some(
            secret_of(value, &key, auth.secrets.as_ref(), genv, config_file).map(
                |(secret, source)| Credential {
                    password: field == "password",
                    secret,
                    source,
                },
            ),
        )
    };
    let password_mode = match mode {
        Some("password") => true,
        Some("token") => false,
        // Unset: password when a password is configured, as OpenClaw does.
        _ => auth.password.is_some() || genv.get("OPENCLAW_GATEWAY_PASSWORD").is_some(),
    };
    let (field, value, var) = if password_mode {
        ("password", &auth.password, "OPENCLAW_GATEWAY_PASSWORD")
    } else {
        ("token", &auth.token, "OPENCLAW_GATEWAY_TOKEN")
    };
    match from_config(field, value) {
        Some(Ok(c)) => return Auth::Secret(c),
        Some(Err(a)) => return a,
        None => {}
    }
    if let Some((secret, source)) = genv.get(var) {
        return Auth::Secret(Credential {
            password: password_mode,
            secret,
            source,
        });
    }
    Auth::Missing(format!(
        "no gateway {field}: not in gateway.auth.{field} of {config_file}, nor ${var} here or in the gateway's .env files (without one, OpenClaw makes a token no one else can know: set gateway.auth.{field})"
    ))
}

/// A config value that names a secret: a string (with `${NAME}`
/// substitution) or a secret reference. `Ok` is the secret and where it came
/// from.
fn secret_of(
    value: &Value,
    key: &str,
    secrets: Option<&Value>,
    genv: &GatewayEnv,
    config_file: &str,
) -> Result<(String, String), Auth> {
    let unreadable = |why: String| Err(Auth::Unreadable(why));
    match value {
        Value::String(text) => {
            if let Some(name) = whole_var(text) {
                return env_ref(name, key, genv);
            }
            let (secret, vars) = substitute(text, genv).map_err(|name| {
                Auth::Missing(format!(
                    "{key} in {config_file} uses ${{{name}}}, which is not set here nor in the gateway's .env files"
                ))
            })?;
            if secret.trim().is_empty() {
                return Err(Auth::Missing(format!("{key} in {config_file} is empty")));
            }
            let source = if vars.is_empty() {
                format!("{key} in {config_file}")
            } else {
                format!("{key} in {config_file} (with {})", vars.join(", "))
            };
            Ok((secret, source))
        }
        Value::Object(r) => {
            let source = r.get("source").and_then(Value::as_str).unwrap_or_default();
            let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
            let provider = r
                .get("provider")
                .and_then(Value::as_str)
                .unwrap_or_else(|| {
                    secrets
                        .and_then(|s| s["defaults"][source].as_str())
                        .unwrap_or("default")
                });
            match source {
                "env" => env_ref(id, key, genv),
                "file" => file_ref(provider, id, key, secrets),
                "exec" => unreadable(format!(
                    "{key} is an exec secret reference (provider {provider:?}): ClawFleet runs no command to read a secret"
                )),
                "store" => unreadable(format!(
                    "{key} is in OpenClaw's own secret store, which only OpenClaw reads"
                )),
                other => unreadable(format!(
                    "{key} is a secret reference of an unknown source {:?}",
                    crate::net::preview(other.as_bytes(), 20)
                )),
            }
        }
        other => Err(Auth::Missing(format!(
            "{key} in {config_file} is {}, not a string or a secret reference",
            crate::outside::json_kind(other)
        ))),
    }
}

/// `NAME` when `text` is exactly `${NAME}` or `$NAME` (upper case, digits,
/// `_`, as OpenClaw's secret references take them).
fn whole_var(text: &str) -> Option<&str> {
    let name = text
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .or_else(|| text.strip_prefix('$'))?;
    env_name(name).then_some(name)
}

fn env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 128
}

fn env_ref(name: &str, key: &str, genv: &GatewayEnv) -> Result<(String, String), Auth> {
    if !env_name(name) {
        return Err(Auth::Unreadable(format!(
            "{key} names an environment variable that is not a valid name"
        )));
    }
    genv.get(name).ok_or_else(|| {
        Auth::Missing(format!(
            "{key} is ${name}, which is not set here nor in the gateway's .env files (set it for ClawFleet too)"
        ))
    })
}

/// `text` with each `${NAME}` replaced (`$${` is a literal `${`); `Err` is
/// a name that is not set. Also the variables used.
fn substitute(text: &str, genv: &GatewayEnv) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut used = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${")
            && let Some(end) = tail.find('}')
            && env_name(&tail[..end])
        {
            let name = &tail[..end];
            let (value, _) = genv.get(name).ok_or_else(|| name.to_owned())?;
            out.push_str(&value);
            used.push(format!("${name}"));
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok((out, used))
}

/// A `file` secret reference: the provider's file, checked as OpenClaw
/// checks it, then the value at `id`.
fn file_ref(
    provider: &str,
    id: &str,
    key: &str,
    secrets: Option<&Value>,
) -> Result<(String, String), Auth> {
    let missing = |why: String| Err(Auth::Missing(format!("{key}: {why}")));
    let Some(p) = secrets.and_then(|s| s["providers"][provider].as_object()) else {
        return missing(format!(
            "the file secret provider {provider:?} is not in secrets.providers"
        ));
    };
    if p.get("source").and_then(Value::as_str) != Some("file") {
        return missing(format!(
            "secrets.providers.{provider} is not a file provider"
        ));
    }
    let Some(path) = p.get("path").and_then(Value::as_str) else {
        return missing(format!("secrets.providers.{provider} has no path"));
    };
    let path = Path::new(path);
    let limit = p
        .get("maxBytes")
        .and_then(Value::as_u64)
        .unwrap_or(MAX_SECRET_FILE)
        .min(MAX_SECRET_FILE);
    let text = private_file(path, limit).map_err(|why| Auth::Missing(format!("{key}: {why}")))?;
    let source = format!("{key} (file {})", path.display());
    match p.get("mode").and_then(Value::as_str).unwrap_or("json") {
        "singleValue" => {
            if id != "value" {
                return missing(format!(
                    "a singleValue file secret is read with id \"value\", not {:?}",
                    crate::net::preview(id.as_bytes(), 40)
                ));
            }
            let value = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            Ok((value.to_owned(), source))
        }
        _ => {
            let json: Value = serde_json::from_str(&text).map_err(|e| {
                Auth::Missing(format!(
                    "{key}: {} is not JSON (line {}, column {})",
                    path.display(),
                    e.line(),
                    e.column()
                ))
            })?;
            match json.pointer(id).and_then(Value::as_str) {
                Some(v) => Ok((v.to_owned(), source)),
                None => missing(format!(
                    "{} has no string at {:?}",
                    path.display(),
                    crate::net::preview(id.as_bytes(), 60)
                )),
            }
        }
    }
}

/// A secret file's text, with OpenClaw's checks: not a symbolic link, a
/// regular file owned by this user with no group or other permission bits.
fn private_file(path: &Path, limit: u64) -> Result<String, String> {
    let link = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if link.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; OpenClaw refuses those for secrets",
            path.display()
        ));
    }
    let (file, _) = crate::outside::open(path, limit).map_err(|e| e.to_string())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{} can be read by others (mode {:o}); OpenClaw refuses it too: chmod 600",
                path.display(),
                meta.mode() & 0o777
            ));
        }
        if meta.uid() != me {
            return Err(format!("{} belongs to another user", path.display()));
        }
    }
    drop(file);
    crate::outside::read_text(path, limit).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsString;

    use serde_json::json;

    use super::*;

    fn env_of(vars: &[(&str, &str)], home: &Path) -> Environment {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        Environment::with(move |k| vars.get(k).cloned(), Some(home.to_path_buf()))
    }

    fn auth(v: Value) -> GatewayAuth {
        GatewayAuth {
            mode: v["mode"].as_str().map(str::to_owned),
            token: v.get("token").cloned(),
            password: v.get("password").cloned(),
            secrets: v.get("secrets").cloned(),
        }
    }

    fn secret(a: &Auth) -> (&str, bool, &str) {
        match a {
            Auth::Secret(c) => (c.secret.as_str(), c.password, c.source.as_str()),
            other => panic!("no secret: {other:?}"),
        }
    }

    #[test]
    fn strings_variables_and_env_files() {
        let home = tempfile::tempdir().unwrap();
        let state = home.path().join(".openclaw");
        std::fs::create_dir_all(&state).unwrap();
        let env = env_of(&[("A", "aa")], home.path());
        let g = GatewayEnv::new(&env, &state);
        let cfg = "~/.openclaw/openclaw.json";
        let a = resolve(&auth(json!({"token": "lit-1"})), &g, cfg);
        assert_eq!(
            secret(&a),
            (
                "lit-1",
                false,
                "gateway.auth.token in ~/.openclaw/openclaw.json"
            )
        );
        let a = resolve(&auth(json!({"token": "x-${A}-$${B}-$C"})), &g, cfg);
        assert_eq!(secret(&a).0, "x-aa-${B}-$C");
        let a = resolve(&auth(json!({"token": "$A"})), &g, cfg);
        assert_eq!(secret(&a), ("aa", false, "$A"));
        // The variable, when the config has none; from the gateway's .env.
        let a = resolve(&auth(json!({})), &g, cfg);
        assert!(
            matches!(a, Auth::Missing(ref w) if w.contains("OPENCLAW_GATEWAY_TOKEN")),
            "{a:?}"
        );
        std::fs::write(
            state.join(".env"),
            "# x\nexport OPENCLAW_GATEWAY_TOKEN=\"from-dotenv\"\n",
        )
        .unwrap();
        let g = GatewayEnv::new(&env, &state);
        let a = resolve(&auth(json!({})), &g, cfg);
        assert_eq!(secret(&a).0, "from-dotenv");
        assert!(
            secret(&a).2.starts_with("OPENCLAW_GATEWAY_TOKEN in "),
            "{a:?}"
        );
        // Ours before the files; the config before both.
        let env2 = env_of(&[("OPENCLAW_GATEWAY_TOKEN", "mine")], home.path());
        let g2 = GatewayEnv::new(&env2, &state);
        assert_eq!(secret(&resolve(&auth(json!({})), &g2, cfg)).0, "mine");
        assert_eq!(
            secret(&resolve(&auth(json!({"token": "cfg"})), &g2, cfg)).0,
            "cfg"
        );
        // An unset variable is named.
        let a = resolve(&auth(json!({"token": "${NOPE}"})), &g, cfg);
        assert!(
            matches!(a, Auth::Missing(ref w) if w.contains("$NOPE")),
            "{a:?}"
        );
        // Password mode: the password, also when only it is configured.
        let a = resolve(&auth(json!({"password": "pw", "token": "tk"})), &g, cfg);
        assert_eq!(
            secret(&a),
            (
                "pw",
                true,
                "gateway.auth.password in ~/.openclaw/openclaw.json"
            )
        );
        let a = resolve(
            &auth(json!({"mode": "token", "password": "pw", "token": "tk"})),
            &g,
            cfg,
        );
        assert_eq!(secret(&a).0, "tk");
        assert_eq!(resolve(&auth(json!({"mode": "none"})), &g, cfg), Auth::Open);
        // Never the secret in Debug.
        assert!(
            !format!("{:?}", resolve(&auth(json!({"token": "lit-9"})), &g, cfg)).contains("lit-9")
        );
    }

    #[test]
    fn secret_references() {
        let home = tempfile::tempdir().unwrap();
        let env = env_of(&[("GW_TOKEN", "from-env-ref")], home.path());
        let g = GatewayEnv::new(&env, home.path());
        let a = resolve(
            &auth(json!({"token": {"source": "env", "provider": "default", "id": "GW_TOKEN"}})),
            &g,
            "c",
        );
        assert_eq!(secret(&a).0, "from-env-ref");
        let file = home.path().join("secrets.json");
        std::fs::write(&file, r#"{"gateway": {"token": "from-file"}}"#).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let secrets =
            json!({"providers": {"vault": {"source": "file", "path": file.to_str().unwrap()}}});
        let reference = json!({"mode": "token", "token": {"source": "file", "provider": "vault", "id": "/gateway/token"}, "secrets": secrets});
        assert_eq!(
            secret(&resolve(&auth(reference.clone()), &g, "c")).0,
            "from-file"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let a = resolve(&auth(reference.clone()), &g, "c");
            assert!(
                matches!(a, Auth::Missing(ref w) if w.contains("chmod 600")),
                "{a:?}"
            );
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            let link = home.path().join("link.json");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            let via_link = json!({"token": {"source": "file", "provider": "vault", "id": "/gateway/token"},
                "secrets": {"providers": {"vault": {"source": "file", "path": link.to_str().unwrap()}}}});
            let a = resolve(&auth(via_link), &g, "c");
            assert!(
                matches!(a, Auth::Missing(ref w) if w.contains("symbolic link")),
                "{a:?}"
            );
        }
        let single = home.path().join("token.txt");
        std::fs::write(&single, "one-value\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&single, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        let a = resolve(
            &auth(
                json!({"token": {"source": "file", "provider": "one", "id": "value"},
                "secrets": {"providers": {"one": {"source": "file", "path": single.to_str().unwrap(), "mode": "singleValue"}}}}),
            ),
            &g,
            "c",
        );
        assert_eq!(secret(&a).0, "one-value");
        // exec and store: for the CLI to resolve.
        for source in ["exec", "store"] {
            let a = resolve(
                &auth(json!({"token": {"source": source, "provider": "default", "id": "X"}})),
                &g,
                "c",
            );
            assert!(matches!(a, Auth::Unreadable(_)), "{source}: {a:?}");
        }
    }
}
