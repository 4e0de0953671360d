//! Helpers for the tests of `deploy/`: finding the Prometheus tools, running them, a loopback
//! HTTP client for their APIs, and guards that stop every process a test starts.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn read_repo_file(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

pub fn yaml_file(relative: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read_repo_file(relative)).unwrap_or_else(|error| panic!("{relative} is not YAML: {error}"))
}

/// Every document of a multi-document YAML file.
pub fn yaml_documents(relative: &str) -> Vec<serde_yaml::Value> {
    let text = read_repo_file(relative);
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            serde_yaml::Value::deserialize(document).unwrap_or_else(|error| panic!("{relative} is not YAML: {error}"))
        })
        .filter(|value| !value.is_null())
        .collect()
}

use serde::Deserialize as _;

/// Whether this run is CI (`CI=true`, as CI services set it): there a missing tool is a failure,
/// not a skip, because scripts/setup.sh installs every tool the tests use.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// The first of `names` found on PATH.
pub fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|directory| names.iter().map(move |name| directory.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The tool, or `None` after printing why the calling test skips; in CI a missing tool panics.
pub fn tool_or_skip(names: &[&str], package: &str) -> Option<PathBuf> {
    if let Some(found) = find_tool(names) {
        return Some(found);
    }
    let message = format!(
        "{} not found on PATH: install the Debian package `{package}` (scripts/setup.sh does)",
        names.join(" / ")
    );
    assert!(!in_ci(), "{message}; CI=true, so this is a failure rather than a skip");
    eprintln!("SKIPPED: {message}");
    None
}

/// A child process killed and reaped when dropped, so a failing test leaves nothing behind.
pub struct ChildGuard {
    pub name: &'static str,
    pub child: Child,
    pub log_path: PathBuf,
}

impl ChildGuard {
    pub fn spawn(name: &'static str, command: &mut Command, log_path: PathBuf) -> ChildGuard {
        let log = std::fs::File::create(&log_path).unwrap();
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        ChildGuard { name, child, log_path }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited early ({status}); log:\n{}", self.name, self.log());
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 request over loopback (1.0 so that the Go servers answer without chunked
/// encoding); `None` when nothing listens yet.
pub fn http_request(port: u16, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n").into_bytes();
    if let Some((content_type, content)) = body {
        request.extend(format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", content.len()).bytes());
        request.extend(b"\r\n");
        request.extend(content);
    } else {
        request.extend(b"\r\n");
    }
    stream.write_all(&request).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters pass through).
pub fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Every alerting rule of a rule file: (alert name, rule).
pub fn alert_rules(rules: &serde_yaml::Value) -> Vec<(String, serde_yaml::Value)> {
    rules["groups"]
        .as_sequence()
        .expect("rule file has groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("group has rules").iter())
        .filter_map(|rule| Some((rule["alert"].as_str()?.to_string(), rule.clone())))
        .collect()
}

/// GitHub's anchor for a Markdown heading: lower-case, spaces to '-', punctuation dropped.
pub fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|character| match character {
            ' ' => Some('-'),
            'a'..='z' | '0'..='9' | '-' | '_' => Some(character),
            _ => None,
        })
        .collect()
}
