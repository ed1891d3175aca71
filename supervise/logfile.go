package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
)

// MaxLogSize is the size at which a log is rotated: PROC.log becomes
// PROC.log.1 (replacing the older one) and a new PROC.log starts.
const MaxLogSize = 10 << 20

// logFile is an append-only log that rotates itself when it grows past max.
type logFile struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

// openLog opens the log of process NS/NAME of the project in dir. It makes
// the logs directories below dir, but never dir itself: a project whose
// directory was removed is gone.
func openLog(dir, ns, name string, max int64) (*logFile, error) {
	path := LogPath(dir, ns, name)
	for _, d := range []string{filepath.Dir(filepath.Dir(path)), filepath.Dir(path)} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	l := &logFile{path: path, max: max}
	return l, l.open()
}

func (l *logFile) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size > 0 && l.size+int64(len(p)) > l.max {
		l.f.Close()
		os.Rename(l.path, l.path+".1")
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
