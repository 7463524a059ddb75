//! A `cairn-node dev` cluster and the `cairn` binary, for tests of the client's commands
//! against real nodes.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const NODE_BIN: &str = env!("CARGO_BIN_EXE_cairn-node");

/// The `cairn` binary, built next to `cairn-node` (`cargo test -p node -p client`).
pub(crate) fn cairn_bin() -> PathBuf {
    let path = Path::new(NODE_BIN).with_file_name("cairn");
    assert!(
        path.exists(),
        "{} is missing: build the client too (cargo test -p node -p client)",
        path.display()
    );
    path
}

/// A base port whose node, cluster and issuer ports are all free.
fn base_port() -> u16 {
    let start = 20_000 + u16::try_from(std::process::id() % 300).unwrap() * 40;
    (0..200u16)
        .map(|step| 20_000 + (start - 20_000 + step * 11) % 9_000)
        .find(|&base| {
            [0, 1, 2, 100, 101, 102, 300]
                .iter()
                .all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok())
        })
        .unwrap()
}

/// `cairn-node dev`, stopped with SIGTERM when dropped (it stops its nodes).
pub(crate) struct Dev {
    child: Child,
    pub(crate) dir: PathBuf,
    base: u16,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

impl Dev {
    /// Starts three nodes with the CA and the dev issuer, and waits for their trust documents.
    pub(crate) fn start(dir: &Path) -> Dev {
        let base = base_port();
        let child = Command::new(NODE_BIN)
            .args([
                "dev",
                "--nodes",
                "3",
                "--base-port",
                &base.to_string(),
                "--dir",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.with_extension("dev.log")).unwrap())
            .spawn()
            .unwrap();
        let dev = Dev {
            child,
            dir: dir.to_path_buf(),
            base,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !dir.join("client_trust_config.json").exists() {
            assert!(
                Instant::now() < deadline,
                "the dev cluster did not come up; see {}",
                dir.with_extension("dev.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Written just before; give the write a moment to finish.
        std::thread::sleep(Duration::from_millis(200));
        dev
    }

    /// Node `node`'s (0-based) public URL.
    pub(crate) fn url(&self, node: u16) -> String {
        format!("http://127.0.0.1:{}", self.base + node)
    }

    /// The dev issuer's URL.
    pub(crate) fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 300)
    }
}

/// Runs `cairn` with `home` as `CAIRN_HOME`.
pub(crate) fn cairn(home: &Path, args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .env("CAIRN_HOME", home)
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("CAIRN_URL")
        .env_remove("CAIRN_TRUST_ROOT")
        .args(args)
        .output()
        .unwrap()
}

/// A command's outcome, for assertion messages.
pub(crate) fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
