package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/capprof/capprof/internal/escape"
)

// ExeID identifies an executable file: the device and inode of mm->exe_file.
type ExeID struct {
	Dev uint32
	Ino uint64
}

// ExeIDOf returns the identity the kernel side reports for the file at path.
func ExeIDOf(path string) (ExeID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ExeID{}, err
	}
	// The kernel's dev_t is MKDEV(major, minor) = major<<20 | minor, not the
	// user-space encoding stat(2) returns.
	return ExeID{Dev: unix.Major(st.Dev)<<20 | unix.Minor(st.Dev), Ino: st.Ino}, nil
}

// String is "inode INO on device MAJOR:MINOR".
func (id ExeID) String() string {
	return fmt.Sprintf("inode %d on device %d:%d", id.Ino, id.Dev>>20, id.Dev&(1<<20-1))
}

// Creds are a task's credentials: ids and the five capability sets as bitmasks.
type Creds struct {
	UID, GID, SUID, SGID, EUID, EGID, FSUID, FSGID       uint32
	Inheritable, Permitted, Effective, Bounding, Ambient uint64
	// UserNSLevel is the depth of the credentials' user namespace (0: the
	// initial one) and UserNSInode its inode number (/proc/PID/ns/user).
	UserNSLevel, UserNSInode uint32
}

// CheckKey tells aggregated capability checks apart: what the kernel side
// counts them by (struct agg_key). It is comparable, a map key.
type CheckKey struct {
	CgroupID uint64
	Exe      ExeID
	Syscall  int32 // -1 when no syscall was in progress
	Cap      uint8
	Denied   bool
	// InitUserNS is true when the check was against the initial user namespace.
	InitUserNS bool
	// CredOverride is true when the task ran with overridden credentials
	// (override_creds: cred != real_cred), i.e. the kernel acting for itself.
	CredOverride bool
	// OtherCred is true when the checked credentials were not the task's own
	// (e.g. has_capability_noaudit on another task).
	OtherCred bool
	// RuntimeInit is true when the container runtime made the check, in a
	// task that entered the cgroup from outside (runc init) and has not yet
	// executed the workload's program.
	RuntimeInit bool
	// Steady is true when the check came after the target's startup window.
	Steady bool
	// AuditKnown is true when the backend read cap_capable's audit options
	// (fexit, kprobe); NoAudit and InSetID are those options.
	AuditKnown, NoAudit, InSetID bool
}

// Check is one aggregated capability check: its key and how often it was
// seen.
type Check struct {
	CheckKey
	Count uint64
	// SyscallFailed and SyscallSucceeded count how the followed syscalls in
	// which a denied check was made ended (a sample: see OUTCOME_SAMPLES).
	SyscallFailed, SyscallSucceeded uint64
}

func checkFromKey(k *capprofAggKey) CheckKey {
	return CheckKey{
		CgroupID:     k.CgroupId,
		Exe:          ExeID{Dev: k.ExeDev, Ino: k.ExeIno},
		Syscall:      k.Syscall,
		Cap:          k.Cap,
		Denied:       k.Denied != 0,
		InitUserNS:   k.Flags&uint8(capprofCheckFlagCHECK_INIT_USERNS) != 0,
		CredOverride: k.Flags&uint8(capprofCheckFlagCHECK_CRED_OVERRIDE) != 0,
		OtherCred:    k.Flags&uint8(capprofCheckFlagCHECK_OTHER_CRED) != 0,
		RuntimeInit:  k.Flags&uint8(capprofCheckFlagCHECK_RUNTIME_INIT) != 0,
		Steady:       k.Flags&uint8(capprofCheckFlagCHECK_STEADY) != 0,
		AuditKnown:   k.Flags&uint8(capprofCheckFlagCHECK_AUDIT_KNOWN) != 0,
		NoAudit:      k.Flags&uint8(capprofCheckFlagCHECK_NOAUDIT) != 0,
		InSetID:      k.Flags&uint8(capprofCheckFlagCHECK_INSETID) != 0,
	}
}

// ExecKey identifies one exec of a process on this node: the process (its
// pid and start time) and how many execs its threads had made
// (task->self_exec_id, copied by fork, incremented by exec).
type ExecKey struct {
	TGID  uint32
	Start time.Duration // CLOCK_MONOTONIC when the process started
	Seq   uint32
}

// Header is what every event carries.
type Header struct {
	PID      uint32 // thread id
	TGID     uint32 // process id
	Exec     ExecKey
	CgroupID uint64
	Time     time.Duration // CLOCK_MONOTONIC
	Comm     string
}

// Event is one of *FirstCheck, *CheckSample, *Exec, *Exit, *Fork,
// *CredChange, *CgroupEvent, and *LiveCheck from ReadLiveEvent.
type Event interface{ EventHeader() *Header }

// FirstCheck is the first capability check seen with a new aggregation key.
type FirstCheck struct {
	Header
	Key     CheckKey // counts come from Probe.Checks
	EUID    uint32
	Stack   []uint64 // kernel return addresses, innermost first
	ExePath string
}

// CheckSample is the kernel stack of a later check of a known key, sampled
// when a CPU's count for the key reaches a power of two.
type CheckSample struct {
	Header
	Key   CheckKey
	Stack []uint64 // kernel return addresses, innermost first
}

// Exec is a successful execve in the target set, or, with Existing, a
// process already running when its cgroup became a target.
type Exec struct {
	Header
	Exe      ExeID
	PPID     uint32
	Parent   ExecKey
	Existing bool   // not an exec: reported by ListProcesses
	Filename string // execve's filename argument as given
	Script   bool   // Filename is a script run by the interpreter at ExePath
	ExePath  string
	// Before holds the credentials at execve entry; nil when they were not seen.
	Before *Creds
	// BeforeFromCommit is true when Before was read at commit_creds.
	BeforeFromCommit bool
	After            Creds
	PrivilegeGain    bool // euid/egid changed or permitted capabilities grew
	// RuntimeInit is true when the container runtime executed itself again
	// (from its own root), not the workload.
	RuntimeInit bool
	// Details is filled when the probe streams live events.
	Details *ExecDetails
}

// Namespace indexes of ExecDetails.Namespaces.
const (
	NSUTS = iota
	NSIPC
	NSMnt
	NSPID
	NSPIDForChildren
	NSNet
	NSTime
	NSTimeForChildren
	NSCgroup
	NamespaceCount
)

// ExecDetails are what live events show of a process beyond the profile's needs.
type ExecDetails struct {
	LoginUID uint32 // the audit login uid; 4294967295 when unset
	// Args are the program's arguments, argv[0] included; nil for an
	// Existing process, whose memory the kernel side cannot read.
	Args          []string
	ArgsTruncated bool
	Cwd           string
	// Namespaces are inode numbers, indexed by NSUTS..NSCgroup; 0 when the
	// kernel lacks one (time namespaces before 5.6).
	Namespaces [NamespaceCount]uint32
}

// LiveCheck is a capability check sent for live events: at most one per
// rate-limit interval per exec, capability and verdict.
type LiveCheck struct {
	Header
	// Key is the check's aggregation key.
	Key CheckKey
	// Suppressed counts the checks of the same exec, capability and verdict
	// held back by the rate limit since the previous LiveCheck.
	Suppressed uint64
	Return     int32
	UserNS     UserNamespace
	Stack      []uint64 // kernel return addresses, innermost first
}

// UserNamespace is the user namespace a capability was checked against.
type UserNamespace struct {
	Level        int32
	Inode        uint32
	Owner, Group uint32
}

// Exit is the end of a process (its last thread).
type Exit struct {
	Header
	Status int32 // wait(2) status
}

// Fork is a new process (not a thread) created in the target set.
type Fork struct {
	Header
	ChildPID uint32
	// Child is the new process's exec identity: its own pid and start, the
	// parent's exec count.
	Child ExecKey
}

// CredChange is a change of a task's credentials other than by an exec:
// any install of new credentials (seen at commit_creds), or a difference
// from the credentials the task last had (tracepoint backend; see
// look_at_creds in lib/cred.h).
type CredChange struct {
	Header
	Exe     ExeID
	Syscall int32     // the syscall that made the change; -1 when not known
	Args    [3]uint64 // its first three arguments
	// FromCommit is true when commit_creds reported the change.
	FromCommit bool
	// RuntimeInit is true when the container runtime made the change,
	// before executing the workload (see Check.RuntimeInit).
	RuntimeInit   bool
	Before, After Creds
}

// CgroupEvent is a cgroup that became a target at its creation (its parent
// is one, or it is an armed pod's), before any process entered it; or, with
// Removed, a target whose directory was removed. Header.CgroupID is its
// parent's id, Header's task the one that made or removed it.
type CgroupEvent struct {
	Header
	ID, ParentID uint64
	// Name is the directory's name (a container id, a systemd scope, pod<uid>).
	Name    string
	Removed bool
	// Runtime: a container runtime starts its processes (see Target.Runtime).
	Runtime bool
}

// EventHeader returns the header every event has.
func (h *Header) EventHeader() *Header { return h }

// ErrClosed is returned by ReadEvent once the probe is flushed or closed and
// every queued event has been read.
var ErrClosed = errors.New("event stream closed")

// pollInterval is how long events can wait in the ring buffer: the kernel
// side wakes the reader only when the buffer fills up (see wakeup_flag in
// lib/output.h), so the reader looks on its own this often, and sleeps between.
const pollInterval = 100 * time.Millisecond

// ReadEvent blocks until the next event arrives.
func (p *Probe) ReadEvent() (Event, error) { return readEvent(p.reader) }

// ReadLiveEvent blocks until the next *LiveCheck arrives; it returns
// ErrClosed at once when the probe was loaded without Options.LiveEvents.
func (p *Probe) ReadLiveEvent() (Event, error) {
	if p.liveReader == nil {
		return nil, ErrClosed
	}
	return readEvent(p.liveReader)
}

func readEvent(reader *ringbuf.Reader) (Event, error) {
	for {
		reader.SetDeadline(time.Now().Add(pollInterval))
		rec, err := reader.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, ringbuf.ErrFlushed) {
			return nil, ErrClosed
		}
		if err != nil {
			return nil, fmt.Errorf("read event: %w", err)
		}
		ev, err := decodeEvent(rec.RawSample)
		if err != nil {
			return nil, &DecodeError{Err: err}
		}
		return ev, nil
	}
}

// DecodeError is an event that could not be decoded: the reader can count
// it and read on.
type DecodeError struct{ Err error }

func (e *DecodeError) Error() string { return "decode event: " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Flush makes ReadEvent and ReadLiveEvent return the events still queued,
// then ErrClosed.
func (p *Probe) Flush() error {
	if p.liveReader != nil {
		if err := p.liveReader.Flush(); err != nil {
			return err
		}
	}
	return p.reader.Flush()
}

func decodeEvent(raw []byte) (Event, error) {
	if len(raw) < 4 {
		return nil, fmt.Errorf("short event: %d bytes", len(raw))
	}
	switch t := capprofEventType(binary.NativeEndian.Uint32(raw)); t {
	case capprofEventTypeEVENT_CAP_FIRST:
		var e capprofCapEvent
		if err := decode(raw, &e); err != nil {
			return nil, err
		}
		return &FirstCheck{
			Header:  header(&e.Hdr),
			Key:     checkFromKey(&e.Key),
			EUID:    e.Uid,
			Stack:   stack(e.StackBytes, &e.Stack),
			ExePath: joinPath(e.Exe.Depth, e.Exe.Truncated, &e.Exe.Names),
		}, nil
	case capprofEventTypeEVENT_CAP_SAMPLE:
		var e capprofSampleEvent
		if err := decode(raw, &e); err != nil {
			return nil, err
		}
		return &CheckSample{Header: header(&e.Hdr), Key: checkFromKey(&e.Key), Stack: stack(e.StackBytes, &e.Stack)}, nil
	case capprofEventTypeEVENT_EXEC:
		var e capprofExecEvent
		if err := decodeExec(raw, &e); err != nil {
			return nil, err
		}
		ev := &Exec{
			Header:           header(&e.Hdr),
			Exe:              ExeID{Dev: e.ExeDev, Ino: e.ExeIno},
			PPID:             e.Ppid,
			Parent:           ExecKey{TGID: e.Ppid, Start: time.Duration(e.ParentStartNs), Seq: e.ParentExecSeq},
			Existing:         e.Flags&uint32(capprofExecFlagEXEC_EXISTING) != 0,
			Filename:         nameString(e.Filename[:]),
			Script:           e.Flags&uint32(capprofExecFlagEXEC_SCRIPT) != 0,
			BeforeFromCommit: e.Flags&uint32(capprofExecFlagEXEC_BEFORE_FROM_COMMIT) != 0,
			ExePath:          joinPath(e.Exe.Depth, e.Exe.Truncated, &e.Exe.Names),
			After:            creds(&e.After),
			PrivilegeGain:    e.Flags&uint32(capprofExecFlagEXEC_PRIV_GAIN) != 0,
			RuntimeInit:      e.Flags&uint32(capprofExecFlagEXEC_RUNTIME_INIT) != 0,
		}
		if e.Flags&uint32(capprofExecFlagEXEC_HAVE_BEFORE) != 0 {
			before := creds(&e.Before)
			ev.Before = &before
		}
		if e.Flags&uint32(capprofExecFlagEXEC_DETAILS) != 0 {
			ev.Details = &ExecDetails{
				LoginUID:      e.Loginuid,
				Args:          splitArgs(e.Args[:min(int(e.ArgsLen), len(e.Args))]),
				ArgsTruncated: e.Flags&uint32(capprofExecFlagEXEC_ARGS_TRUNCATED) != 0,
				Cwd:           joinPath(e.Cwd.Depth, e.Cwd.Truncated, &e.Cwd.Names),
			}
			copy(ev.Details.Namespaces[:], e.Ns[:])
			if ev.Details.Cwd == "" {
				ev.Details.Cwd = "/" // the walk stops at once at the task's root
			}
		}
		return ev, nil
	case capprofEventTypeEVENT_EXIT:
		var e capprofExitEvent
		if err := decode(raw, &e); err != nil {
			return nil, err
		}
		return &Exit{Header: header(&e.Hdr), Status: e.ExitCode}, nil
	case capprofEventTypeEVENT_FORK:
		var e capprofForkEvent
		if err := decode(raw, &e); err != nil {
			return nil, err
		}
		return &Fork{Header: header(&e.Hdr), ChildPID: e.ChildPid,
			Child: ExecKey{TGID: e.ChildPid, Start: time.Duration(e.ChildStartNs), Seq: e.Hdr.ExecSeq}}, nil
	case capprofEventTypeEVENT_CHECK:
		var e capprofCheckEvent
		if err := decode(raw, &e); err != nil {
			return nil, err
		}
		return &LiveCheck{
			Header: header(&e.Hdr), Key: checkFromKey(&e.Key), Suppressed: e.Suppressed, Return: e.Ret,
			UserNS: UserNamespace{Level: e.UsernsLevel, Inode: e.UsernsInum, Owner: e.UsernsOwner, Group: e.UsernsGroup},
			Stack:  stack(e.StackBytes, &e.Stack),
		}, nil
	case capprofEventTypeEVENT_CRED:
		var e capprofCredEvent
		if err := decode(raw, &e); err != nil {
			return nil, err
		}
		return &CredChange{
			Header:      header(&e.Hdr),
			Exe:         ExeID{Dev: e.ExeDev, Ino: e.ExeIno},
			Syscall:     e.Syscall,
			Args:        e.Args,
			FromCommit:  e.Source == uint32(capprofCredSourceCRED_FROM_COMMIT),
			RuntimeInit: e.RuntimeInit != 0,
			Before:      creds(&e.Before),
			After:       creds(&e.After),
		}, nil
	case capprofEventTypeEVENT_CGROUP:
		var e capprofCgroupEvent
		if err := decode(raw, &e); err != nil {
			return nil, err
		}
		return &CgroupEvent{Header: header(&e.Hdr), ID: e.Id, ParentID: e.ParentId, Name: cString(e.Name[:]),
			Removed: e.Op == uint32(capprofCgroupOpCGROUP_REMOVED),
			Runtime: e.Flags&uint32(capprofTargetFlagTARGET_RUNTIME) != 0}, nil
	default:
		return nil, fmt.Errorf("unknown event type %d", t)
	}
}

// decode copies a record into the generated struct it was written as. The
// layouts are the same by construction (bpf2go generates them from the C
// structs), so a plain copy does what binary.Decode does by reflection, an
// element at a time, which cost ~0.6 ms of CPU per exec event (make bench).
func decode[T any](raw []byte, v *T) error {
	if size := int(unsafe.Sizeof(*v)); len(raw) < size {
		return fmt.Errorf("decode %T: %d bytes, want %d", v, len(raw), size)
	}
	*v = *(*T)(unsafe.Pointer(&raw[0]))
	return nil
}

// decodeExec copies an exec record, which ends after its executable's last
// path component unless it has EXEC_DETAILS (exec_event_size in capprof.c);
// what it leaves out is zero.
func decodeExec(raw []byte, e *capprofExecEvent) error {
	short := int(unsafe.Offsetof(e.Exe) + unsafe.Offsetof(e.Exe.Names))
	if len(raw) < short {
		return fmt.Errorf("decode exec event: %d bytes, want at least %d", len(raw), short)
	}
	*e = capprofExecEvent{}
	full := (*[unsafe.Sizeof(*e)]byte)(unsafe.Pointer(e))
	if n := copy(full[:], raw); n < len(full) && e.Flags&uint32(capprofExecFlagEXEC_DETAILS) != 0 {
		return fmt.Errorf("decode exec event: %d bytes with details, want %d", len(raw), len(full))
	}
	return nil
}

// stack keeps the frames bpf_get_stack filled (bytes < 0 is its error).
func stack(bytes int32, frames *[24]uint64) []uint64 {
	out := []uint64{}
	if bytes > 0 {
		out = append(out, frames[:min(int(bytes)/8, len(frames))]...)
	}
	return out
}

func header(h *capprofEventHeader) Header {
	return Header{
		PID:      h.Pid,
		TGID:     h.Tgid,
		Exec:     ExecKey{TGID: h.Tgid, Start: time.Duration(h.StartNs), Seq: h.ExecSeq},
		CgroupID: h.CgroupId,
		Time:     time.Duration(h.KtimeNs),
		Comm:     nameString(h.Comm[:]),
	}
}

func creds(c *capprofCreds) Creds {
	return Creds{
		UID: c.Uid, GID: c.Gid, SUID: c.Suid, SGID: c.Sgid,
		EUID: c.Euid, EGID: c.Egid, FSUID: c.Fsuid, FSGID: c.Fsgid,
		Inheritable: c.CapInheritable, Permitted: c.CapPermitted, Effective: c.CapEffective,
		Bounding: c.CapBset, Ambient: c.CapAmbient,
		UserNSLevel: c.UsernsLevel, UserNSInode: c.UsernsInum,
	}
}

func cString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// nameString is a name a workload chose (a file name, an argument, its
// comm) in the form capprof records it (escape.Name): valid UTF-8, and two
// different names stay two. Cgroup names stay raw (cString): capprof finds
// their directories by them.
func nameString(b []int8) string { return escape.Name(cString(b)) }

// splitArgs splits NUL-separated argument strings; a last one cut short by
// the kernel's limit is kept as far as it goes.
func splitArgs(b []int8) []string {
	var args []string
	start := 0
	for i, c := range b {
		if c == 0 {
			args = append(args, nameString(b[start:i]))
			start = i + 1
		}
	}
	if start < len(b) {
		args = append(args, nameString(b[start:]))
	}
	return args
}

// joinPath turns the kernel's innermost-first components into "/a/b/c".
// A path deeper than the kernel keeps starts with "/...".
func joinPath(depth, truncated uint32, names *[16][128]int8) string {
	depth = min(depth, uint32(len(names)))
	if depth == 0 {
		return ""
	}
	var sb strings.Builder
	if truncated != 0 {
		sb.WriteString("/...")
	}
	for i := int(depth) - 1; i >= 0; i-- {
		sb.WriteByte('/')
		sb.WriteString(nameString(names[i][:]))
	}
	return sb.String()
}
