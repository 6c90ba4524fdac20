//! A real SOCKS5 server (microsocks, Debian package `microsocks`) for the
//! tests of traffic to peers, as on a tailnet reached through Tailscale's
//! userspace SOCKS5 proxy.
//!
//! microsocks runs with `-b 127.0.0.2` on Linux: every connection it makes
//! leaves from 127.0.0.2, while everything else here connects from
//! 127.0.0.1, so a server can tell which requests took the hop. Without
//! microsocks a test says so and passes, except under CI (`CI` set), where
//! a missing microsocks is a failure: `cargo xtask deps` installs it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where microsocks' outgoing connections leave from (Linux routes all of
/// 127.0.0.0/8 to loopback; elsewhere it is not bound).
pub const HOP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The microsocks binary, if installed.
pub fn microsocks() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("microsocks"))
        .find(|p| p.is_file())
}

/// The binary, or `None` after saying why the test is skipped. Under CI a
/// missing microsocks fails the test.
pub fn microsocks_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(bin) = microsocks() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "microsocks is not installed and CI is set: `cargo xtask deps` (or `apt-get install microsocks`) installs it"
    );
    // Straight to stderr: the test harness captures `eprintln!` of passing
    // tests, and a skip must not be silent.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: microsocks is not installed (`apt-get install microsocks` or `cargo xtask deps`); \
         the SOCKS5 upstream path is untested on this machine"
    );
    None
}

/// A running microsocks on 127.0.0.1, killed when dropped.
pub struct Socks {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Socks {
    pub fn start(bin: &Path, dir: &Path) -> Socks {
        // The port is free a moment before microsocks binds it; another
        // process may take it meanwhile, so try a few.
        for attempt in 0..5 {
            let port = super::free_closed_port();
            let log = dir.join(format!("microsocks-{attempt}.log"));
            let out = std::fs::File::create(&log).unwrap();
            let mut cmd = Command::new(bin);
            cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
            if cfg!(target_os = "linux") {
                cmd.args(["-b", &HOP.to_string()]);
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    eprintln!(
                        "microsocks on port {port} exited ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Socks { child, addr, log };
                }
                assert!(
                    Instant::now() < deadline,
                    "microsocks never listened on {addr}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("microsocks could not listen on a free port in 5 tries");
    }

    /// What microsocks logged: one `client[N] IP: connected to HOST:PORT`
    /// line per connection it made.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Socks {
    fn drop(&mut self) {
        self.stop();
    }
}
