// Package rawfile reads files with plain system calls. os.Open also
// registers each file with the runtime's poller, which costs more calls
// than the read itself; an up that changes nothing reads hundreds of
// /proc/sys and /etc/netns files in a row.
package rawfile

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Stream reads the file at path through buf, handing each part read to
// f (valid until f returns).
func Stream(path string, buf []byte, f func([]byte)) error {
	fd, err := open(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return nil
		}
		f(buf[:n])
	}
}

// Read returns the content of a small file (a sysctl, say).
func Read(path string) ([]byte, error) {
	var out []byte
	var buf [512]byte
	err := Stream(path, buf[:], func(b []byte) { out = append(out, b...) })
	return out, err
}

func open(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}
