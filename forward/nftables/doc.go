// Package nftables is nsrun's native nftables firewall backend: one table
// of nsrun's own, "inet nsrun", whose rules are the same few whatever the
// number of projects, namespaces and ports. The per-namespace and per-port
// work is in sets and verdict maps (kube-proxy's layout): a published port
// is one element of a map, which jumps to a small chain of that
// publication that DNATs. Every element is commented with its project and
// namespace, every publication chain is named after them, and every rule
// carries a comment that names what it does: that is how nsrun tells its
// own objects and compares them with what a project needs (nft prints
// rules in its own normalised form, which differs between versions; the
// comments and elements it prints as written).
//
// The table is rendered as plain values (pure, tested without root) and
// changed through sigs.k8s.io/knftables, one nft -f transaction per change
// holding only what differs.
package nftables
