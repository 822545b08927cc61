"""snf-network: the host side of each KVM NIC (bridged/routed wiring, anti-spoofing,
firewall profiles, nfdhcpd bindings), built as data and applied in one place."""
