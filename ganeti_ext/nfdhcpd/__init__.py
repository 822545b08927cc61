"""nfdhcpd: DHCPv4, DHCPv6, router advertisements and neighbour answers over NFQUEUE.

Pure protocol code (packets, dhcpv4, dhcpv6, ndp) never touches a socket; the binding
table (table), the NFQUEUE loop and reply sending (daemon) and the iptables rules
(rules) are separate, so the protocol logic is tested on frames alone.
"""
