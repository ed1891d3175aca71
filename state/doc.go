// Package state is nsrun's records in /run/nsrun: each project's
// state.json (what up made, enough for down without the spec), host.json
// (the host settings nsrun changed, for the last down to put back), the
// keeper's repairs and the removal marks, the namespaces' exec grants
// beside the directory, and the lock that up and down hold.
package state
