//! Secrets kept in the OS keychain: the macOS Keychain, the Windows
//! Credential Manager, or the Secret Service on Linux (GNOME Keyring,
//! KWallet). One entry per secret, under the service name
//! [`SERVICE`] and the secret's account name, so the platform's own tools
//! see it too (`security find-generic-password -s clawfleet -a anthropic`,
//! `secret-tool lookup service clawfleet username anthropic`).
//!
//! The set of secrets is closed ([`Secret`]). A value goes in through
//! `clawfleet secret set NAME` on standard input, never argv, and comes out
//! only to the code that sends it: errors and descriptions never carry it
//! (the platform stores' errors can hold the bytes they read; they are
//! dropped here).
//!
//! Every call here blocks (D-Bus, Security framework, Win32); the daemon
//! goes through [`KeychainSecret`], which runs one lookup at a time on the
//! blocking pool, bounded in time, and keeps what it read for a minute.
//!
//! Where: which store each platform uses is [`store`], the one `cfg` of
//! this concern; [`KEYCHAIN_NAME`] says it in words.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyring_core::{CredentialStore, Entry};

/// The keychain service name every ClawFleet secret is stored under.
pub const SERVICE: &str = "clawfleet";

/// Longest value accepted for a secret: API keys are about a hundred bytes.
pub const MAX_LEN: usize = 4096;

/// What the OS keychain is called on this platform, for messages.
#[cfg(target_os = "macos")]
pub const KEYCHAIN_NAME: &str = "the macOS Keychain";
/// What the OS keychain is called on this platform, for messages.
#[cfg(windows)]
pub const KEYCHAIN_NAME: &str = "the Windows Credential Manager";
/// What the OS keychain is called on this platform, for messages.
#[cfg(target_os = "linux")]
pub const KEYCHAIN_NAME: &str = "the Secret Service (GNOME Keyring, KWallet)";
/// What the OS keychain is called on this platform, for messages.
#[cfg(not(any(target_os = "macos", windows, target_os = "linux")))]
pub const KEYCHAIN_NAME: &str = "no OS keychain (not supported on this platform)";

/// The secrets ClawFleet keeps in the keychain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// The Anthropic API key the proxy sends for clients that send none.
    Anthropic,
}

impl Secret {
    /// Every secret, for help texts.
    pub const ALL: [Secret; 1] = [Secret::Anthropic];

    /// Its name on the command line and its account in the keychain.
    pub fn name(self) -> &'static str {
        match self {
            Secret::Anthropic => "anthropic",
        }
    }

    /// What it is, in words.
    pub fn what(self) -> &'static str {
        match self {
            Secret::Anthropic => "Anthropic API key",
        }
    }

    /// The secret called `name`, if there is one.
    pub fn parse(name: &str) -> Option<Secret> {
        Secret::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Where it is kept, in words: "… (service clawfleet, account anthropic)".
    pub fn location(self) -> String {
        format!(
            "{KEYCHAIN_NAME} (service {SERVICE}, account {})",
            self.name()
        )
    }
}

/// Why the keychain gave no secret. Never holds the secret's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeychainError {
    /// No entry.
    #[error("no {what} in {location}: store one with `clawfleet secret set {name}`")]
    Missing {
        /// The secret, in words.
        what: &'static str,
        /// Where it was looked for.
        location: String,
        /// Its command-line name.
        name: &'static str,
    },
    /// The keychain is locked, or the user or policy refused access.
    #[error("{location} refused access ({why}): unlock it, or allow ClawFleet to read it")]
    Refused {
        /// Where.
        location: String,
        /// The platform's words.
        why: String,
    },
    /// The keychain could not be reached or failed.
    #[error("{location} failed: {why}")]
    Failed {
        /// Where.
        location: String,
        /// The platform's words.
        why: String,
    },
    /// The entry holds bytes that are not a usable key.
    #[error("the entry in {location} is {why}: store it again with `clawfleet secret set {name}`")]
    Unusable {
        /// Where.
        location: String,
        /// What is wrong with it (never the value).
        why: &'static str,
        /// Its command-line name.
        name: &'static str,
    },
    /// More than one entry matches.
    #[error(
        "{count} entries match in {location}: delete the extra ones (`clawfleet secret delete {name}` removes one at a time)"
    )]
    Ambiguous {
        /// Where.
        location: String,
        /// How many.
        count: usize,
        /// Its command-line name.
        name: &'static str,
    },
    /// The lookup did not finish in time (a keychain waiting to be
    /// unlocked, a D-Bus service that does not answer).
    #[error("{location} did not answer within {} s (is it waiting to be unlocked?)", *.ms as f64 / 1000.0)]
    TimedOut {
        /// Where.
        location: String,
        /// The limit, in milliseconds.
        ms: u64,
    },
    /// A value refused before it reached the keychain.
    #[error("{0}")]
    BadValue(String),
}

/// This platform's credential store. The one place that chooses it.
fn store(secret: Secret) -> Result<Arc<CredentialStore>, KeychainError> {
    let failed = |e: keyring_core::Error| classify(secret, e);
    #[cfg(target_os = "macos")]
    let store: Arc<CredentialStore> =
        apple_native_keyring_store::keychain::Store::new().map_err(failed)?;
    #[cfg(windows)]
    let store: Arc<CredentialStore> = windows_native_keyring_store::Store::new().map_err(failed)?;
    #[cfg(target_os = "linux")]
    let store: Arc<CredentialStore> =
        zbus_secret_service_keyring_store::Store::new().map_err(failed)?;
    #[cfg(not(any(target_os = "macos", windows, target_os = "linux")))]
    let store: Arc<CredentialStore> = {
        let _ = failed;
        return Err(KeychainError::Failed {
            location: secret.location(),
            why: "this platform has no supported keychain; use a key file".to_owned(),
        });
    };
    Ok(store)
}

fn entry(secret: Secret) -> Result<Entry, KeychainError> {
    let store = store(secret)?;
    Entry::new_in_store(&store, SERVICE, secret.name()).map_err(|e| classify(secret, e))
}

/// The platform's error in words, without any secret bytes it carries.
fn classify(secret: Secret, e: keyring_core::Error) -> KeychainError {
    use keyring_core::Error as E;
    let location = secret.location();
    match e {
        E::NoEntry => KeychainError::Missing {
            what: secret.what(),
            location,
            name: secret.name(),
        },
        E::NoStorageAccess(why) => KeychainError::Refused {
            location,
            why: why.to_string(),
        },
        E::BadEncoding(_) => KeychainError::Unusable {
            location,
            why: "not text (UTF-8)",
            name: secret.name(),
        },
        E::BadDataFormat(_, why) => KeychainError::Failed {
            location,
            why: format!("the stored data is not in the expected format ({why})"),
        },
        E::Ambiguous(entries) => KeychainError::Ambiguous {
            location,
            count: entries.len(),
            name: secret.name(),
        },
        E::PlatformFailure(why) => KeychainError::Failed {
            location,
            why: why.to_string(),
        },
        // The rest carry no data: parameter names, limits, store texts.
        other => KeychainError::Failed {
            location,
            why: other.to_string(),
        },
    }
}

/// A value as it may be stored: trimmed, one line of printable ASCII, not
/// empty, at most [`MAX_LEN`] bytes. The error says what is wrong and
/// never echoes the value.
pub fn check_value(secret: Secret, raw: &str) -> Result<String, KeychainError> {
    let value = raw.trim();
    let bad = |why: &str| {
        Err(KeychainError::BadValue(format!(
            "that {} {why}; nothing was stored",
            secret.what()
        )))
    };
    if value.is_empty() {
        return bad("is empty");
    }
    if value.len() > MAX_LEN {
        return bad(&format!("is longer than {MAX_LEN} bytes"));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
        let what = if c.is_whitespace() {
            "white space"
        } else if c.is_control() {
            "a control character"
        } else {
            "a character that is not ASCII"
        };
        return bad(&format!(
            "contains {what}: an API key is one word of ASCII (paste only the key)"
        ));
    }
    Ok(value.to_owned())
}

/// The stored secret. Blocks.
pub fn get(secret: Secret) -> Result<String, KeychainError> {
    let raw = entry(secret)?
        .get_password()
        .map_err(|e| classify(secret, e))?;
    check_value(secret, &raw).map_err(|_| KeychainError::Unusable {
        location: secret.location(),
        why: "empty, too long or not one word of printable ASCII",
        name: secret.name(),
    })
}

/// Stores `raw` (checked with [`check_value`]), replacing what was there.
/// Blocks.
pub fn set(secret: Secret, raw: &str) -> Result<(), KeychainError> {
    let value = check_value(secret, raw)?;
    entry(secret)?
        .set_password(&value)
        .map_err(|e| classify(secret, e))
}

/// Removes the stored secret; `false` when there was none. Blocks.
pub fn delete(secret: Secret) -> Result<bool, KeychainError> {
    match entry(secret)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring_core::Error::NoEntry) => Ok(false),
        Err(e) => Err(classify(secret, e)),
    }
}

/// A secret shown without revealing it: its first characters when they are
/// a well-known prefix, its last four and its length
/// ("sk-ant-…wXyZ, 108 characters").
pub fn masked(value: &str) -> String {
    let n = value.chars().count();
    if n < 16 {
        return format!("{n} characters");
    }
    let prefix: String = value.chars().take_while(|c| *c != '-').take(8).collect();
    let head = if value.starts_with("sk-ant-") {
        "sk-ant-".to_owned()
    } else if prefix.len() < 8 && value[prefix.len()..].starts_with('-') {
        format!("{prefix}-")
    } else {
        String::new()
    };
    let tail: String = value.chars().skip(n - 4).collect();
    format!("{head}…{tail}, {n} characters")
}

/// Reads one secret value from standard input: at most [`MAX_LEN`] bytes
/// and a line end. On a terminal it prompts on standard error first and,
/// on Unix, turns the terminal's echo off while the value is typed.
pub fn read_value(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, IsTerminal, Read, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    let read = {
        let _echo = tty.then(EchoOff::new).flatten();
        stdin.lock().take(MAX_LEN as u64 + 2).read_line(&mut line)
    };
    if tty {
        eprintln!();
    }
    read?;
    Ok(line)
}

/// The terminal's echo, off until dropped.
#[cfg(unix)]
struct EchoOff(libc::termios);

#[cfg(unix)]
impl EchoOff {
    fn new() -> Option<Self> {
        // SAFETY: tcgetattr fills the zeroed termios it is given for fd 0;
        // a non-zero return (not a terminal) leaves it unused.
        let mut mode: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut mode) } != 0 {
            return None;
        }
        let saved = mode;
        mode.c_lflag &= !libc::ECHO;
        mode.c_lflag |= libc::ECHONL;
        // SAFETY: sets fd 0's mode from a termios tcgetattr filled.
        (unsafe { libc::tcsetattr(0, libc::TCSANOW, &mode) } == 0).then_some(EchoOff(saved))
    }
}

#[cfg(unix)]
impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the mode tcgetattr read from fd 0.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}

/// No echo control here: the console shows what is typed (paste it, or
/// pipe it in).
#[cfg(not(unix))]
struct EchoOff;

#[cfg(not(unix))]
impl EchoOff {
    fn new() -> Option<Self> {
        None
    }
}

/// How long a secret read from the keychain is used before it is read again
/// (so that `clawfleet secret set` takes effect without a restart).
pub const FRESH_FOR: Duration = Duration::from_secs(60);
/// How long a failed lookup is remembered before the keychain is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long one lookup may take (a keychain prompting to be unlocked).
pub const LOOKUP_LIMIT: Duration = Duration::from_secs(10);

type Lookup = tokio::task::JoinHandle<Result<String, KeychainError>>;

#[derive(Default)]
struct Held {
    /// The last outcome and when it was read.
    last: Option<(Instant, Result<Arc<str>, KeychainError>)>,
    /// A lookup that outlived [`LOOKUP_LIMIT`]: awaited again rather than
    /// started anew, so a hung keychain holds one blocking thread, not one
    /// per request.
    running: Option<Lookup>,
}

/// A secret read from the keychain for the daemon: one lookup at a time on
/// the blocking pool, each bounded by [`LOOKUP_LIMIT`]; a value is kept for
/// [`FRESH_FOR`], a failure for [`RETRY_AFTER`].
pub struct KeychainSecret {
    secret: Secret,
    held: tokio::sync::Mutex<Held>,
    read: fn(Secret) -> Result<String, KeychainError>,
    limit: Duration,
    retry_after: Duration,
}

impl KeychainSecret {
    /// `secret`, read from the OS keychain when first needed.
    pub fn new(secret: Secret) -> Self {
        Self::with_reader(secret, get, LOOKUP_LIMIT, RETRY_AFTER)
    }

    /// The same, reading through `read`, with its own limits (tests).
    pub fn with_reader(
        secret: Secret,
        read: fn(Secret) -> Result<String, KeychainError>,
        limit: Duration,
        retry_after: Duration,
    ) -> Self {
        Self {
            secret,
            held: tokio::sync::Mutex::new(Held::default()),
            read,
            limit,
            retry_after,
        }
    }

    /// The secret, from memory while fresh, else from the keychain.
    pub async fn get(&self) -> Result<Arc<str>, KeychainError> {
        let mut held = self.held.lock().await;
        if let Some((at, last)) = &held.last {
            let keep = if last.is_ok() {
                FRESH_FOR
            } else {
                self.retry_after
            };
            if at.elapsed() < keep {
                return last.clone();
            }
        }
        let secret = self.secret;
        let read = self.read;
        let mut lookup = held
            .running
            .take()
            .unwrap_or_else(|| tokio::task::spawn_blocking(move || read(secret)));
        let outcome = match tokio::time::timeout(self.limit, &mut lookup).await {
            Ok(Ok(read)) => read.map(Arc::from),
            Ok(Err(join)) => Err(KeychainError::Failed {
                location: secret.location(),
                why: format!("the lookup stopped: {join}"),
            }),
            Err(_) => {
                held.running = Some(lookup);
                Err(KeychainError::TimedOut {
                    location: secret.location(),
                    ms: u64::try_from(self.limit.as_millis()).unwrap_or(u64::MAX),
                })
            }
        };
        if let Err(e) = &outcome {
            tracing::warn!(secret = secret.name(), "keychain lookup failed: {e}");
        }
        held.last = Some((Instant::now(), outcome.clone()));
        outcome
    }

    /// Forgets what was read, so the next [`get`](Self::get) asks the
    /// keychain (the key was refused upstream, say).
    pub async fn forget(&self) {
        self.held.lock().await.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_a_closed_set_that_round_trips() {
        for s in Secret::ALL {
            assert_eq!(Secret::parse(s.name()), Some(s));
        }
        assert_eq!(Secret::parse("Anthropic"), None);
        assert_eq!(Secret::parse("fleet-token"), None);
        assert_eq!(Secret::parse(""), None);
    }

    #[test]
    fn the_keychain_of_each_platform_is_named() {
        // The one cfg'd table of this concern, as data: each supported
        // platform names its store, and the location names the entry.
        let loc = Secret::Anthropic.location();
        assert!(loc.starts_with(KEYCHAIN_NAME), "{loc}");
        assert!(
            loc.ends_with("(service clawfleet, account anthropic)"),
            "{loc}"
        );
        #[cfg(target_os = "linux")]
        assert!(KEYCHAIN_NAME.contains("Secret Service"));
        #[cfg(target_os = "macos")]
        assert!(KEYCHAIN_NAME.contains("Keychain"));
        #[cfg(windows)]
        assert!(KEYCHAIN_NAME.contains("Credential Manager"));
    }

    #[test]
    fn values_are_checked_and_never_echoed() {
        let s = Secret::Anthropic;
        assert_eq!(
            check_value(s, "  sk-ant-api03-abc\n").as_deref(),
            Ok("sk-ant-api03-abc")
        );
        for (bad, says) in [
            ("", "is empty"),
            ("  \n", "is empty"),
            ("sk-ant-one two", "white space"),
            ("sk-ant-\u{7}bell", "control character"),
            ("sk-ant-é", "not ASCII"),
        ] {
            let e = check_value(s, bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
            assert!(e.contains("nothing was stored"), "{e}");
            if bad.trim().len() > 3 {
                assert!(!e.contains(bad.trim()), "the value is echoed: {e}");
            }
        }
        let long = "k".repeat(MAX_LEN + 1);
        let e = check_value(s, &long).unwrap_err().to_string();
        assert!(e.contains("longer than 4096"), "{e}");
    }

    #[test]
    fn a_masked_secret_shows_its_prefix_end_and_length_only() {
        let key = "sk-ant-api03-SECRETSECRETSECRET-wXyZ";
        let m = masked(key);
        assert_eq!(m, format!("sk-ant-…wXyZ, {} characters", key.len()));
        assert!(!m.contains("SECRET"));
        assert_eq!(masked("short"), "5 characters");
        assert_eq!(masked("abcdefghijklmnopqrstuvwxyz"), "…wxyz, 26 characters");
        assert_eq!(
            masked("sk-proj-ABCDEFGHIJKLMNOP"),
            "sk-…MNOP, 24 characters"
        );
    }

    #[test]
    fn platform_errors_lose_the_bytes_they_carry() {
        let s = Secret::Anthropic;
        let e = classify(
            s,
            keyring_core::Error::BadEncoding(b"sk-ant-\xffSECRET".to_vec()),
        );
        let text = e.to_string();
        assert!(text.contains("not text"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
        let e = classify(s, keyring_core::Error::NoEntry).to_string();
        assert!(e.contains("clawfleet secret set anthropic"), "{e}");
    }

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

    static READS: AtomicUsize = AtomicUsize::new(0);

    fn counted(_: Secret) -> Result<String, KeychainError> {
        READS.fetch_add(1, SeqCst);
        Ok("sk-ant-test-key".to_owned())
    }

    #[tokio::test]
    async fn a_value_read_is_kept_and_forgetting_reads_again() {
        let k = KeychainSecret::new(Secret::Anthropic);
        let k = KeychainSecret { read: counted, ..k };
        assert_eq!(k.get().await.as_deref(), Ok("sk-ant-test-key"));
        assert_eq!(k.get().await.as_deref(), Ok("sk-ant-test-key"));
        assert_eq!(READS.load(SeqCst), 1);
        k.forget().await;
        assert_eq!(k.get().await.as_deref(), Ok("sk-ant-test-key"));
        assert_eq!(READS.load(SeqCst), 2);
    }

    static STARTED: AtomicUsize = AtomicUsize::new(0);
    static RELEASE: AtomicBool = AtomicBool::new(false);

    fn hangs(_: Secret) -> Result<String, KeychainError> {
        STARTED.fetch_add(1, SeqCst);
        while !RELEASE.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok("sk-ant-late".to_owned())
    }

    #[tokio::test]
    async fn a_hung_keychain_holds_one_lookup_not_one_per_request() {
        let k = KeychainSecret::with_reader(
            Secret::Anthropic,
            hangs,
            Duration::from_millis(50),
            Duration::ZERO,
        );
        for _ in 0..3 {
            let e = k.get().await.unwrap_err();
            assert!(matches!(e, KeychainError::TimedOut { .. }), "{e}");
            assert!(e.to_string().contains("did not answer within"), "{e}");
        }
        // The first lookup was awaited again each time, never a second.
        assert_eq!(STARTED.load(SeqCst), 1);
        RELEASE.store(true, SeqCst);
        assert_eq!(k.get().await.as_deref(), Ok("sk-ant-late"));
        assert_eq!(STARTED.load(SeqCst), 1);
    }
}
