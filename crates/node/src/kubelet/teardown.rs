//! Lifecycle hooks, termination messages and tearing a pod down within its
//! grace period (regular containers first, then sidecars in reverse order).

use std::time::Duration;

use k8s_openapi::api::core::v1::LifecycleHandler;
use tokio::time::Instant;

use super::httpget;
use super::probe::{self, Kind};
use super::start::ExecIn;
use super::volumes;
use super::worker::Worker;

/// Upstream's cap of termination messages.
const MAX_TERMINATION_MESSAGE: usize = 4096;

impl Worker {
    pub(super) async fn post_start_hook(&mut self, i: usize, id: &str) {
        let Some(h) = self.ctrs[i]
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.clone())
        else {
            return;
        };
        if let Err(msg) = self.run_hook(&h, i, id, Duration::from_secs(30)).await {
            let pod = self.pod.clone();
            let name = self.ctrs[i].status.name.clone();
            self.deps
                .events
                .emit(&pod, Some(&name), true, "FailedPostStartHook", &msg);
            let containers = self.deps.containers.clone();
            let id = id.to_string();
            tokio::spawn(async move { containers.stop(&id, Duration::from_secs(2)).await });
        }
    }

    pub(super) async fn run_hook(
        &self,
        h: &LifecycleHandler,
        i: usize,
        id: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let action = if let Some(e) = &h.exec {
            probe::Action::Exec(e.command.clone().unwrap_or_default())
        } else if let Some(hg) = &h.http_get {
            let p = k8s_openapi::api::core::v1::Probe {
                http_get: Some(hg.clone()),
                ..Default::default()
            };
            probe::spec(Kind::Liveness, &p, &self.ctrs[i].spec, &self.sources.pod_ip).action
        } else if let Some(s) = &h.sleep {
            tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(timeout)).await;
            return Ok(());
        } else {
            return Ok(());
        };
        if let probe::Action::Http {
            https,
            host,
            port,
            path,
            headers,
        } = action
        {
            let target = httpget::Target {
                https,
                host,
                port,
                path,
            };
            let url = target.url();
            return match tokio::time::timeout(timeout, httpget::hook(&target, &headers)).await {
                Ok(Ok(fell_back)) => {
                    if fell_back {
                        let pod = self.pod.clone();
                        self.deps.events.emit(
                            &pod,
                            None,
                            true,
                            "LifecycleHTTPFallback",
                            &format!(
                                "request to HTTPS lifecycle hook {} got HTTP response, retry with HTTP succeeded",
                                target.authority()
                            ),
                        );
                    }
                    Ok(())
                }
                Ok(Err(e)) => Err(format!("Get \"{url}\": {e}")),
                Err(_) => Err(format!("Get \"{url}\": context deadline exceeded")),
            };
        }
        let exec = ExecIn {
            containers: self.deps.containers.clone(),
            id: id.to_string(),
        };
        match probe::run_once(&action, timeout, &exec).await {
            (true, _) => Ok(()),
            (false, msg) => Err(msg),
        }
    }

    /// Reads and clears the container's termination message.
    pub(super) async fn termination_message(&self, name: &str) -> String {
        let f = self.dir.join("termination").join(name);
        let mut msg = std::fs::read(&f)
            .map(|mut b| {
                b.truncate(MAX_TERMINATION_MESSAGE);
                String::from_utf8_lossy(&b).into_owned()
            })
            .unwrap_or_default();
        let fallback = self
            .ctrs
            .iter()
            .find(|c| c.status.name == name)
            .and_then(|c| c.spec.termination_message_policy.clone());
        if msg.is_empty() && fallback.as_deref() == Some("FallbackToLogsOnError") {
            let attempt = self
                .ctrs
                .iter()
                .find(|c| c.status.name == name)
                .map(|c| c.status.restart_count)
                .unwrap_or(0);
            if let Ok(text) = std::fs::read_to_string(self.log_path(name, attempt)) {
                let lines: Vec<&str> = text.lines().rev().take(80).collect();
                let raw: Vec<String> = lines
                    .into_iter()
                    .rev()
                    .map(|l| l.splitn(4, ' ').nth(3).unwrap_or("").to_string())
                    .collect();
                msg = raw.join("\n");
                if msg.len() > 2048 {
                    msg = msg[msg.len() - 2048..].to_string();
                }
            }
        }
        msg
    }

    /// Stops everything of the pod within `grace` and removes it.
    pub(super) async fn terminate(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let pod = self.pod.clone();
        let mut stops = Vec::new();
        // Regular containers first, then sidecars in reverse order.
        let mut order: Vec<usize> = (0..self.ctrs.len())
            .filter(|i| !self.ctrs[*i].init)
            .collect();
        order.extend((0..self.ctrs.len()).filter(|i| self.ctrs[*i].sidecar).rev());
        for i in order {
            if !self.ctrs[i].running() {
                continue;
            }
            let Some(id) = self.ctrs[i].id.clone() else {
                continue;
            };
            let name = self.ctrs[i].status.name.clone();
            self.deps.events.emit(
                &pod,
                Some(&name),
                false,
                "Killing",
                &format!("Stopping container {name}"),
            );
            if let Some(h) = self.ctrs[i]
                .spec
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.clone())
            {
                if let Err(msg) = self.run_hook(&h, i, &id, grace).await {
                    self.deps
                        .events
                        .emit(&pod, Some(&name), true, "FailedPreStopHook", &msg);
                }
            }
            self.ctrs[i].stop_tasks();
            let containers = self.deps.containers.clone();
            let left = deadline.saturating_duration_since(Instant::now());
            stops.push(tokio::spawn(
                async move { containers.stop(&id, left).await },
            ));
        }
        for s in stops {
            let _ = s.await;
        }
        for c in &mut self.ctrs {
            c.stop_all_tasks();
            if let Some(id) = c.id.take() {
                self.deps.containers.remove(&id).await;
            }
        }
        if self
            .sandbox
            .as_ref()
            .is_some_and(|s| !s.netns.as_os_str().is_empty())
        {
            if let Err(e) = self
                .deps
                .network
                .teardown(&self.uid, &self.namespace(), &self.name())
                .await
            {
                tracing::warn!(pod = %self.name(), error = %e, "network teardown");
            }
        }
        volumes::teardown(&self.pod, &self.dir, self.deps.mounter.as_ref());
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(self.deps.cfg.logs_dir.join(format!(
            "{}_{}_{}",
            self.namespace(),
            self.name(),
            self.uid
        )));
        self.deps.events.forget(&self.uid);
    }
}
