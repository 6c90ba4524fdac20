//! The OS keychain for real, on Linux: a private D-Bus session bus with
//! GNOME Keyring's Secret Service on it (Debian packages `dbus`,
//! `gnome-keyring`, and `libsecret-tools` for `secret-tool`, the platform's
//! own client). `clawfleet secret` stores and checks the Anthropic key
//! there, `secret-tool` reads the same entry, and `clawfleet serve` sends it
//! to a fake Anthropic for a client that sent no key.
//!
//! Without those packages the test says so and passes, except under CI
//! (`CI` set): `cargo xtask deps` installs them.

#![cfg(target_os = "linux")]

use crate::support::{self, TestConfig};

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

/// A session bus and an unlocked GNOME Keyring on it, in a private home;
/// both killed when dropped.
struct SecretService {
    bus: Child,
    keyring: Child,
    address: String,
    home: tempfile::TempDir,
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

impl SecretService {
    /// Started, or `None` after saying why the test is skipped.
    fn start(test: &str) -> Option<Self> {
        let missing: Vec<&str> = [
            "dbus-daemon",
            "dbus-send",
            "gnome-keyring-daemon",
            "secret-tool",
        ]
        .into_iter()
        .filter(|b| !on_path(b))
        .collect();
        if !missing.is_empty() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{missing:?} not installed and CI is set: `cargo xtask deps` installs dbus, gnome-keyring and libsecret-tools"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED {test}: {missing:?} not installed (`cargo xtask deps`); the keychain is untested on this machine"
            );
            return None;
        }
        let home = tempfile::tempdir().unwrap();
        let run = home.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let socket = home.path().join("bus");
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(bus.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let address = line.trim().to_owned();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {line:?}");
        let mut service = SecretService {
            bus,
            keyring: Command::new("true").spawn().unwrap(),
            address,
            home,
        };
        // The keyring's password on standard input: it creates the login
        // keyring with it, unlocked, as the default collection.
        let mut keyring = service
            .env(&mut Command::new("gnome-keyring-daemon"))
            .args(["--foreground", "--components=secrets", "--unlock"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            use std::io::Write;
            let mut stdin = keyring.stdin.take().unwrap();
            stdin.write_all(b"test-keyring-password").unwrap();
        }
        service.keyring = keyring;
        // Ready once it owns its name on the bus.
        support::poll_blocking(
            20,
            Duration::from_millis(50),
            "gnome-keyring-daemon to take org.freedesktop.secrets",
            || {
                let out = service
                    .env(&mut Command::new("dbus-send"))
                    .args([
                        "--session",
                        "--print-reply",
                        "--dest=org.freedesktop.DBus",
                        "/org/freedesktop/DBus",
                        "org.freedesktop.DBus.NameHasOwner",
                        "string:org.freedesktop.secrets",
                    ])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            },
            |reply| reply.contains("boolean true"),
        );
        Some(service)
    }

    /// `cmd` with this bus and home and nothing of the user's.
    fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        let home = self.home.path();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
    }

    fn config_path(&self) -> PathBuf {
        self.home.path().join("config.toml")
    }

    /// `clawfleet secret ARGS` with `stdin`, on the test's config.
    fn clawfleet_secret(&self, args: &[&str], stdin: &str) -> Output {
        support::output_with_stdin(
            self.env(&mut support::clawfleet(&self.config_path()))
                .arg("secret")
                .args(args),
            stdin,
        )
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        let _ = self.keyring.kill();
        let _ = self.keyring.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ask(client: &reqwest::Client, proxy: &str) -> (u16, Value) {
    let r = client
        .post(format!("{proxy}/v1/messages"))
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_anthropic_key_is_stored_in_the_secret_service_and_sent_for_keyless_clients() {
    let Some(ss) = SecretService::start(
        "the_anthropic_key_is_stored_in_the_secret_service_and_sent_for_keyless_clients",
    ) else {
        return;
    };
    let (anthropic, task) = support::fake_anthropic().await;
    let data = ss.home.path().join("data-dir");
    TestConfig::one_machine(&data, &support::closed_url())
        .set("proxy", "anthropic_url", &anthropic)
        .write(&ss.config_path());
    let key = support::ANTHROPIC_TEST_KEY;
    let wrong = "sk-ant-api03-WRONGWRONGWRONG-0000";

    // Nothing stored yet: check says so, and how to store one.
    let out = ss.clawfleet_secret(&["check", "anthropic"], "");
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("no Anthropic API key in the Secret Service")
            && err.contains("clawfleet secret set anthropic"),
        "{err}"
    );
    // A bad value is refused before it reaches the keychain, not echoed.
    let out = ss.clawfleet_secret(&["set", "anthropic"], "sk-ant one two\n");
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("white space") && !err.contains("one two"),
        "{err}"
    );
    // An unknown name is refused with the names there are; a key pasted
    // in its place is not printed back.
    let out = ss.clawfleet_secret(&["set", "sk-ant-api03-PASTEDPASTED"], "x\n");
    assert_eq!(out.status.code(), Some(2));
    let (stdout, err) = text(&out);
    assert!(err.contains("ClawFleet keeps anthropic"), "{err}");
    assert!(
        !err.contains("PASTED") && !stdout.contains("PASTED"),
        "{err}"
    );

    // A wrong key first.
    let out = ss.clawfleet_secret(&["set", "anthropic"], &format!("{wrong}\n"));
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stored in the Secret Service"), "{err}");
    assert!(!stdout.contains(wrong) && !err.contains(wrong));

    let mut cmd = support::clawfleet(&ss.config_path());
    ss.env(&mut cmd)
        .env("CLAWFLEET_LOG", "debug")
        .stderr(Stdio::piped());
    let (mut serve, proxy) = support::serve(cmd).await;
    let client = support::client();

    // The keychain's key is sent: Anthropic refuses the wrong one, and its
    // refusal comes back as it was.
    let (status, body) = ask(&client, &proxy).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["message"], "invalid x-api-key", "{body}");

    // The right key, stored while the daemon runs: after Anthropic's 401
    // the daemon reads the keychain again rather than in a minute.
    let out = ss.clawfleet_secret(&["set", "anthropic"], &format!("{key}\n"));
    assert!(out.status.success(), "{:?}", text(&out));
    let (status, body) = ask(&client, &proxy).await;
    assert_eq!(status, 200, "the keychain's new key was sent: {body}");
    assert_eq!(body["content"][0]["text"], "Hi");

    // The platform's own tool sees the same entry.
    let out = ss
        .env(&mut Command::new("secret-tool"))
        .args(["lookup", "service", "clawfleet", "username", "anthropic"])
        .output()
        .unwrap();
    assert_eq!(
        text(&out).0.trim(),
        key,
        "secret-tool reads what clawfleet stored"
    );

    // check shows it masked.
    let out = ss.clawfleet_secret(&["check", "anthropic"], "");
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        stdout.trim(),
        "Anthropic API key in the Secret Service (GNOME Keyring, KWallet) (service clawfleet, account anthropic): 15 characters"
    );
    assert!(!stdout.contains(key), "{stdout}");

    // delete removes it; a second delete has nothing to do.
    let out = ss.clawfleet_secret(&["delete", "anthropic"], "");
    assert!(
        out.status.success() && text(&out).1.contains("deleted"),
        "{:?}",
        text(&out)
    );
    let out = ss.clawfleet_secret(&["delete", "anthropic"], "");
    assert!(
        out.status.success() && text(&out).1.contains("nothing to delete"),
        "{:?}",
        text(&out)
    );
    let out = ss
        .env(&mut Command::new("secret-tool"))
        .args(["lookup", "service", "clawfleet", "username", "anthropic"])
        .output()
        .unwrap();
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "gone for secret-tool too"
    );

    // Neither key is in the daemon's log (at debug) or the ledger.
    let records = support::ledger_records(&data, 2).await;
    let all = serde_json::to_string(&records).unwrap();
    assert!(
        !all.contains(key) && !all.contains(wrong),
        "no key in the ledger"
    );
    let _ = serve.start_kill();
    let mut log = String::new();
    serve
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .await
        .unwrap();
    assert!(
        !log.contains(key) && !log.contains(wrong),
        "a key in the log:\n{log}"
    );
    task.abort();
}
