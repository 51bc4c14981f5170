//! How many pods a node accepts: a fixed `--max-pods`, or the EKS-style
//! derivation from network interfaces,
//! `interfaces * (ips_per_interface - 1) + (2 if host-network pods count)`.

/// Errors of the max-pods derivation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaxPodsError {
    #[error("max pods must be at least 1")]
    Zero,
    #[error("interfaces must be at least 1")]
    NoInterfaces,
    #[error("ips per interface must be at least 2 (one is the interface's own)")]
    TooFewIps,
    #[error("max pods overflows")]
    Overflow,
}

/// Default `--max-pods`, as upstream's kubelet.
pub const DEFAULT_MAX_PODS: u32 = 110;

/// Where the pod limit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPods {
    /// `--max-pods N`.
    Fixed(u32),
    /// EKS-style derivation from the node's network interfaces.
    Interfaces {
        interfaces: u32,
        ips_per_interface: u32,
        count_host_network: bool,
    },
}

impl Default for MaxPods {
    fn default() -> Self {
        MaxPods::Fixed(DEFAULT_MAX_PODS)
    }
}

impl MaxPods {
    /// The resulting pod limit.
    pub fn resolve(self) -> Result<u32, MaxPodsError> {
        match self {
            MaxPods::Fixed(0) => Err(MaxPodsError::Zero),
            MaxPods::Fixed(n) => Ok(n),
            MaxPods::Interfaces {
                interfaces,
                ips_per_interface,
                count_host_network,
            } => eni_max_pods(interfaces, ips_per_interface, count_host_network),
        }
    }
}

/// `interfaces * (ips_per_interface - 1) + (2 if count_host_network)`.
pub fn eni_max_pods(
    interfaces: u32,
    ips_per_interface: u32,
    count_host_network: bool,
) -> Result<u32, MaxPodsError> {
    if interfaces == 0 {
        return Err(MaxPodsError::NoInterfaces);
    }
    if ips_per_interface < 2 {
        return Err(MaxPodsError::TooFewIps);
    }
    let pods = interfaces
        .checked_mul(ips_per_interface - 1)
        .ok_or(MaxPodsError::Overflow)?;
    pods.checked_add(if count_host_network { 2 } else { 0 })
        .ok_or(MaxPodsError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eks_instance_types() {
        // m5.large: 3 ENIs x 10 IPs -> 29; t3.medium: 3 x 6 -> 17.
        assert_eq!(eni_max_pods(3, 10, true), Ok(29));
        assert_eq!(eni_max_pods(3, 6, true), Ok(17));
        // m5.24xlarge: 15 x 50 -> 737.
        assert_eq!(eni_max_pods(15, 50, true), Ok(737));
        assert_eq!(eni_max_pods(3, 10, false), Ok(27));
    }

    #[test]
    fn errors() {
        assert_eq!(eni_max_pods(0, 10, true), Err(MaxPodsError::NoInterfaces));
        assert_eq!(eni_max_pods(3, 1, true), Err(MaxPodsError::TooFewIps));
        assert_eq!(
            eni_max_pods(u32::MAX, 3, false),
            Err(MaxPodsError::Overflow)
        );
        assert_eq!(MaxPods::Fixed(0).resolve(), Err(MaxPodsError::Zero));
    }

    #[test]
    fn resolve() {
        assert_eq!(MaxPods::default().resolve(), Ok(110));
        assert_eq!(MaxPods::Fixed(7).resolve(), Ok(7));
        let eni = MaxPods::Interfaces {
            interfaces: 4,
            ips_per_interface: 15,
            count_host_network: true,
        };
        assert_eq!(eni.resolve(), Ok(58));
    }
}
