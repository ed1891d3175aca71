// Package project brings a spec to life and takes it away again: it turns
// a spec into the desired state (pure), checks it against the host before
// any change, plans the steps, applies them with rollback, and records
// what it made in /run/nsrun/PROJECT so that down works from the record.
package project
