// Package keeper is the process that keeps the firewall state of every
// project of a state directory true while any heals (nsrun keep DIR, which
// up starts and the last down stops): its loop looks after each firewall
// event (Run), and every few seconds at what sends none (QuietFingerprint).
// It repairs through a Healer, the engine, and never changes anything
// itself. It also counts the host's link, address and route changes for
// up, which trusts what it read before while the count stays (Serve,
// Token; see host.PeerCache). Daemon starts and stops it.
package keeper
