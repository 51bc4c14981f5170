//! What a real node reports in `status.nodeInfo`, read from the host as
//! upstream's kubelet (through cAdvisor) reads it: the OS image from
//! `/etc/os-release`, the kernel release, the machine ID, the boot ID and
//! the DMI product UUID; and the OCI runtime's version from its
//! `--version` output.

use std::path::Path;

/// Host facts for `status.nodeInfo` (simulated nodes report none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSystem {
    pub os_image: String,
    pub kernel_version: String,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `PRETTY_NAME` of an os-release file's text (upstream's osImage), or
/// "Linux" when it has none.
pub fn pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

/// `containerRuntimeVersion` from an OCI runtime's `--version` output
/// (`runc version 1.1.5+ds1` → `runc://1.1.5+ds1`); `None` if the first
/// line is not `NAME version VERSION`.
pub fn runtime_version(version_output: &str) -> Option<String> {
    let first = version_output.lines().next()?;
    let mut words = first.split_whitespace();
    let (name, word, version) = (words.next()?, words.next()?, words.next()?);
    (word == "version").then(|| format!("{name}://{version}"))
}

impl HostSystem {
    /// Reads this host.
    pub fn read() -> HostSystem {
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        let machine_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .map(|p| read_trimmed(p))
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        HostSystem {
            os_image: pretty_name(&os_release),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            machine_id,
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
        }
    }

    /// The runtime version of `binary` (`NAME://VERSION`), if it answers
    /// `--version` that way.
    pub fn runtime_version_of(binary: &Path) -> Option<String> {
        let out = std::process::Command::new(binary)
            .arg("--version")
            .output()
            .ok()?;
        runtime_version(&String::from_utf8_lossy(&out.stdout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_image_is_the_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(pretty_name(text), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(pretty_name("ID=x\n"), "Linux");
    }

    #[test]
    fn runtime_versions_are_name_and_version() {
        assert_eq!(
            runtime_version("runc version 1.1.5+ds1\ncommit: v1.1.5\nspec: 1.0.2-dev\n"),
            Some("runc://1.1.5+ds1".to_string())
        );
        assert_eq!(
            runtime_version("crun version 1.8.1\n"),
            Some("crun://1.8.1".to_string())
        );
        assert_eq!(runtime_version("garbage\n"), None);
        assert_eq!(runtime_version(""), None);
    }
}
