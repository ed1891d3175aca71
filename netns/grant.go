package netns

import (
	"github.com/nsrun/nsrun/internal/nsexec"
)

// Grant is who may run nsrun exec in a namespace without root, and which
// namespace that is (see nsexec.Grant).
type Grant = nsexec.Grant

// GrantVersion is the version of a grant record this nsrun writes.
const GrantVersion = nsexec.GrantVersion

// Cookie returns a named namespace's cookie: a number the kernel gives
// each network namespace it makes and never gives again.
func Cookie(name string) (uint64, error) {
	f, err := nsexec.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return nsexec.Cookie(f)
}
