// Package keeper is the process that keeps the firewall state of every
// project of a state directory true while any heals (nsrun keep DIR, which
// up starts and the last down stops): its loop looks after each firewall
// event (Run), and every few seconds at what sends none (QuietFingerprint).
// It repairs through a Healer, the engine, and never changes anything
// itself. It also holds every published port (Holder), which up asks of
// it on its socket (Serve), and counts the changes to the host's links,
// addresses and routes (HostChanges), which up and status ask for there
// (Changes) to reuse what they read of the host while nothing changed.
// Daemon starts and stops it.
package keeper
