//! Benchmark support: run the fakes in a child process (so the parent's peak RSS is the
//! controller's alone) and talk to it over stdin/stdout with one-line commands.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
};

/// Peak resident set size of this process in KiB (`VmHWM` of `/proc/self/status`; 0 where
/// that file does not exist).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A child process serving fakes: this same binary started with `args`.
pub struct FakeProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl FakeProcess {
    /// Starts the current executable with `args` and returns it with the first line it
    /// prints (by convention the addresses it serves on).
    ///
    /// Errors: the process cannot start or closes its output before the first line.
    pub fn spawn(args: &[&str]) -> std::io::Result<(Self, String)> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("child without pipes"));
        };
        let mut p = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let first = p.read_line()?;
        Ok((p, first))
    }

    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("the fake process closed its output"));
        }
        Ok(line.trim().to_string())
    }

    /// Sends `command` and returns the one-line answer.
    pub fn query(&mut self, command: &str) -> std::io::Result<String> {
        writeln!(self.stdin, "{command}")?;
        self.read_line()
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Child side: answers each stdin line with `handler(line)` on one stdout line, until stdin
/// closes. Blocking; run it on a blocking thread.
pub fn serve_commands(mut handler: impl FnMut(&str) -> String) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        println!("{}", handler(line.trim()));
    }
}

/// Lists every `K` through `api` and runs `reconcile` on each, `concurrency` at a time, as the
/// Controller would. Returns how many objects there were, how many reconciles failed, and the
/// wall time in seconds.
///
/// Errors: the list call's.
pub async fn reconcile_all<K, F, Fut, T, E>(
    api: &kube::Api<K>,
    concurrency: usize,
    reconcile: F,
) -> Result<(usize, usize, f64), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: Fn(std::sync::Arc<K>) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    use futures::StreamExt;
    let start = std::time::Instant::now();
    let list = api.list(&kube::api::ListParams::default()).await?;
    let n = list.items.len();
    let failed = futures::stream::iter(list.items)
        .map(|obj| reconcile(std::sync::Arc::new(obj)))
        .buffer_unordered(concurrency)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    Ok((n, failed, start.elapsed().as_secs_f64()))
}
