//! Node-level masquerading of pod traffic: one iptables rule for the whole
//! podCIDR, installed once, instead of the bridge plugin's per-pod `ipMasq`
//! chain. Measured on the dev box, `ipMasq` costs ~40 ms per ADD and ~50 ms
//! per DEL (a chain and several rules per pod, one `iptables` process
//! each), so the node rule is the default.

use std::process::Command;

/// How pod traffic leaving the podCIDR is masqueraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Masquerade {
    /// Not at all (pods reachable only from the node and each other, or
    /// routed by something else).
    Off,
    /// The bridge plugin's `ipMasq`: a chain and rules per pod.
    PerPod,
    /// One rule for the podCIDR, installed by [`crate::Cni::new`].
    #[default]
    Node,
}

/// Errors managing the masquerade rule.
#[derive(Debug, thiserror::Error)]
pub enum MasqError {
    /// `iptables` could not be run.
    #[error("running {tool}: {source}")]
    Spawn {
        /// `iptables` or `ip6tables`.
        tool: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `iptables` rejected the rule.
    #[error("{tool} {args}: {stderr}")]
    Failed {
        /// `iptables` or `ip6tables`.
        tool: &'static str,
        /// The arguments.
        args: String,
        /// Its stderr.
        stderr: String,
    },
}

/// The tool and rule (without the `-C`/`-A`/`-D` verb) masquerading traffic
/// from `pod_cidr` to anywhere outside it.
pub fn masquerade_rule(pod_cidr: &str) -> (&'static str, Vec<String>) {
    let tool = if pod_cidr.contains(':') {
        "ip6tables"
    } else {
        "iptables"
    };
    let rule = [
        "POSTROUTING",
        "-s",
        pod_cidr,
        "!",
        "-d",
        pod_cidr,
        "-m",
        "comment",
        "--comment",
        &format!("rkube: masquerade pod traffic leaving {pod_cidr}"),
        "-j",
        "MASQUERADE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    (tool, rule)
}

fn iptables(tool: &'static str, verb: &str, rule: &[String]) -> Result<bool, MasqError> {
    let mut args = vec!["-w".to_string(), "-t".into(), "nat".into(), verb.into()];
    args.extend(rule.iter().cloned());
    let out = Command::new(tool)
        .args(&args)
        .output()
        .map_err(|source| MasqError::Spawn { tool, source })?;
    match out.status.code() {
        Some(0) => Ok(true),
        // -C: exit 1 means "no such rule".
        Some(1) if verb == "-C" => Ok(false),
        _ => Err(MasqError::Failed {
            tool,
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

/// Installs the node masquerade rule for `pod_cidr` unless present.
pub fn ensure_node_masquerade(pod_cidr: &str) -> Result<(), MasqError> {
    let (tool, rule) = masquerade_rule(pod_cidr);
    if !iptables(tool, "-C", &rule)? {
        iptables(tool, "-A", &rule)?;
    }
    Ok(())
}

/// Removes the node masquerade rule for `pod_cidr` (every copy); succeeds
/// if absent.
pub fn remove_node_masquerade(pod_cidr: &str) -> Result<(), MasqError> {
    let (tool, rule) = masquerade_rule(pod_cidr);
    while iptables(tool, "-C", &rule)? {
        iptables(tool, "-D", &rule)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_matches_the_cidr_and_family() {
        let (tool, rule) = masquerade_rule("10.244.0.0/24");
        assert_eq!(tool, "iptables");
        assert_eq!(
            rule.join(" "),
            "POSTROUTING -s 10.244.0.0/24 ! -d 10.244.0.0/24 -m comment --comment \
             rkube: masquerade pod traffic leaving 10.244.0.0/24 -j MASQUERADE"
        );
        assert_eq!(masquerade_rule("fd00::/64").0, "ip6tables");
    }
}
