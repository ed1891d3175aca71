// Package iptables is nsrun's iptables firewall backend, for iptables-nft
// and iptables-legacy: nsrun's own chains, jumped to from the built-in
// ones, every rule commented with its project and namespace.
//
// The rules are rendered as plain values (pure, tested without root) and
// applied in one iptables-restore --noflush batch per change.
package iptables
