//! Scheduled retraining by the daemon itself: every `retrain.interval_secs` it runs
//! `sentmon retrain --config FILE` as a child process at the lowest CPU priority, so
//! classification keeps its cores. A promoted model then arrives through the hot reload.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The schedule as a task for the app to supervise, or None when `retrain.interval_secs` is 0 (retrain is then run
/// by cron, a systemd timer or a Kubernetes CronJob) or the config did not come from a file.
pub fn retrains(config: &Config, stop: CancellationToken) -> Option<impl Future<Output = anyhow::Result<()>> + use<>> {
    if config.retrain.interval_secs == 0 {
        return None;
    }
    let Some(config_file) = config.source_file.clone() else {
        tracing::warn!("retrain.interval_secs is set but the config was not read from a file; not scheduling retrains");
        return None;
    };
    let interval = Duration::from_secs(config.retrain.interval_secs);
    tracing::info!(interval_secs = config.retrain.interval_secs, "scheduled retraining on");
    Some(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(interval) => {}
            }
            run_retrain(&config_file, &stop).await;
        }
    })
}

/// Runs one retrain to completion (a shutdown kills it: the registry only ever lists complete
/// versions, so an interrupted run leaves nothing half-promoted).
async fn run_retrain(config_file: &std::path::Path, stop: &CancellationToken) {
    let executable = match std::env::current_exe() {
        Ok(executable) => executable,
        Err(error) => {
            tracing::error!(%error, "cannot find the sentmon executable to run retrain");
            return;
        }
    };
    let mut command = std::process::Command::new(executable);
    command.arg("retrain").arg("--config").arg(config_file);
    lower_priority(&mut command);
    let mut child = match tokio::process::Command::from(command).kill_on_drop(true).spawn() {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(%error, "failed to start sentmon retrain");
            return;
        }
    };
    tracing::info!(pid = child.id(), "retrain started at the lowest CPU priority");
    tokio::select! {
        () = stop.cancelled() => {
            let _ = child.kill().await;
            tracing::info!("retrain stopped by shutdown");
        }
        status = child.wait() => match status {
            Ok(status) if status.success() => tracing::info!("retrain finished"),
            Ok(status) => tracing::error!(%status, "retrain failed; its output above says why"),
            Err(error) => tracing::error!(%error, "lost track of the retrain process"),
        },
    }
}

/// Makes the child run at nice 19 under `SCHED_IDLE`: Linux gives it CPU time only when no
/// normal-priority thread (the daemon's inference workers and pipeline) wants it.
pub fn lower_priority(command: &mut std::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and calls only setpriority and
    // sched_setscheduler, which are async-signal-safe system calls that allocate nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::setpriority(libc::PRIO_PROCESS, 0, 19) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let parameters = libc::sched_param { sched_priority: 0 };
            if libc::sched_setscheduler(0, libc::SCHED_IDLE, &parameters) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lowered_child_runs_at_nice_19_under_sched_idle() {
        let mut command = std::process::Command::new("sleep");
        command.arg("5");
        lower_priority(&mut command);
        let mut child = command.spawn().expect("sleep starts");
        let pid = child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
        // Fields after the parenthesised command name; nice is field 19 of stat(5), the 17th here.
        let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
        let nice: i32 = after_name.split(' ').nth(16).expect("nice field").parse().expect("nice is a number");
        // SAFETY: sched_getscheduler only reads the scheduling policy of the given pid.
        let policy = unsafe { libc::sched_getscheduler(pid as libc::pid_t) };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(nice, 19);
        assert_eq!(policy, libc::SCHED_IDLE);
    }
}
