package nftables

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/rtnl"
	"golang.org/x/sys/unix"
)

// getBatch is how many counters getCounters asks for before it reads the
// answers: each answer is a buffer of its own in the socket's queue
// (about 4 KiB of it), and a queue that is full loses answers.
const getBatch = 32

// getCounters reads the named counters of a table of family inet, one
// request per name, sent getBatch at a time on one socket: the kernel
// finds each object in its hash of names, so the read costs what is asked
// for. A dump of the table's objects costs every project's counters, and
// the kernel walks them again from the first for each part of the dump.
// Counters not there (or no table) are left out.
func getCounters(table string, names []string) (map[string]forward.Flow, error) {
	out := make(map[string]forward.Flow, len(names))
	if len(names) == 0 {
		return out, nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 5}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, err
	}
	buf := make([]byte, 8192)
	for start := 0; start < len(names); start += getBatch {
		batch := names[start:min(start+getBatch, len(names))]
		var req []byte
		for i, name := range batch {
			req = appendGetObj(req, uint32(start+i+1), table, name)
		}
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, fmt.Errorf("asking for counters: %w", err)
		}
		for range batch {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return nil, fmt.Errorf("reading counters: %w", err)
			}
			name, flow, err := parseObjAnswer(buf[:n])
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[name] = flow
		}
	}
	return out, nil
}

// appendGetObj appends an NFT_MSG_GETOBJ request for the counter name of
// the inet table: the netlink header, nfgenmsg (family inet, version 0),
// the table's name, the object's, its type.
func appendGetObj(b []byte, seq uint32, table, name string) []byte {
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, 0) // length, below
	b = binary.NativeEndian.AppendUint16(b, unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETOBJ)
	b = binary.NativeEndian.AppendUint16(b, unix.NLM_F_REQUEST)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
	b = append(b, unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0)
	b = rtnl.AppendAttr(b, unix.NFTA_OBJ_TABLE, append([]byte(table), 0))
	b = rtnl.AppendAttr(b, unix.NFTA_OBJ_NAME, append([]byte(name), 0))
	b = rtnl.AppendAttr(b, unix.NFTA_OBJ_TYPE, binary.BigEndian.AppendUint32(nil, unix.NFT_OBJECT_COUNTER))
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// parseObjAnswer reads the kernel's answer to one NFT_MSG_GETOBJ: the
// counter's name and counts, or the error (ENOENT: no such counter or
// table).
func parseObjAnswer(msg []byte) (string, forward.Flow, error) {
	if len(msg) < unix.NLMSG_HDRLEN+4 || int(binary.NativeEndian.Uint32(msg)) > len(msg) {
		return "", forward.Flow{}, errors.New("reading counters: a short answer")
	}
	msg = msg[:binary.NativeEndian.Uint32(msg)]
	switch typ := binary.NativeEndian.Uint16(msg[4:]); typ {
	case unix.NLMSG_ERROR:
		errno := -int32(binary.NativeEndian.Uint32(msg[unix.NLMSG_HDRLEN:]))
		return "", forward.Flow{}, fmt.Errorf("reading counters: %w", unix.Errno(errno))
	case unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWOBJ:
	default:
		return "", forward.Flow{}, fmt.Errorf("reading counters: an answer of type %#x", typ)
	}
	var name string
	var flow forward.Flow
	var data []byte
	err := rtnl.EachAttr(msg[unix.NLMSG_HDRLEN+4:], func(typ uint16, v []byte) {
		switch typ {
		case unix.NFTA_OBJ_NAME:
			name = rtnl.CString(v)
		case unix.NFTA_OBJ_DATA:
			data = v
		}
	})
	if err == nil {
		err = rtnl.EachAttr(data, func(typ uint16, v []byte) {
			if len(v) < 8 {
				return
			}
			switch typ {
			case unix.NFTA_COUNTER_BYTES:
				flow.Bytes = binary.BigEndian.Uint64(v)
			case unix.NFTA_COUNTER_PACKETS:
				flow.Packets = binary.BigEndian.Uint64(v)
			}
		})
	}
	if err != nil || name == "" {
		return "", forward.Flow{}, fmt.Errorf("reading counters: a malformed answer (%v)", err)
	}
	return name, flow, nil
}
