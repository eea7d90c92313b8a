package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports.
const clockTicks = 100

// ServerUsage is what the server processes used during the run. A figure
// that could not be measured is nil (null in JSON, never 0, which reads as
// a real figure): every PID's CPU time is needed before and after, and an
// enrollment that succeeded to divide it by.
type ServerUsage struct {
	// CPUSeconds is utime+stime over the run, summed over the PIDs.
	CPUSeconds *float64 `json:"cpu_seconds"`
	// CPUMsPerEnroll is CPUSeconds per successful enrollment, in ms.
	CPUMsPerEnroll *float64 `json:"cpu_ms_per_enrollment"`
	// PeakRSSKB is the sum of the processes' VmHWM (their peak resident
	// set since they started) at the end of the run.
	PeakRSSKB *int64 `json:"peak_rss_kb"`
	// PerPID details each process; a process that could not be read (it
	// died, or was restarted with another PID) has Error set.
	PerPID []PIDUsage `json:"per_pid"`
}

// PIDUsage is one server process's use; a figure not measured is nil, as
// in ServerUsage.
type PIDUsage struct {
	PID        int      `json:"pid"`
	CPUSeconds *float64 `json:"cpu_seconds"`
	PeakRSSKB  *int64   `json:"peak_rss_kb"`
	Error      string   `json:"error,omitempty"`
	// Idle is set when the process used no CPU time at all while many
	// enrollments succeeded: it is not the server under load (a
	// mistyped PID, another process); the summed figures are then left
	// out, as for an unreadable one.
	Idle bool `json:"idle,omitempty"`
}

// IdleEnrollments is how many successful enrollments per server PID make
// a PID that used no CPU time over them suspect: any server spends well over
// a millisecond of CPU on an enrollment, and /proc counts CPU time in
// 10 ms units of the scheduler's exact figure, so 20 of them show at least
// one unit.
const IdleEnrollments = 20

// cpuSample is each PID's utime+stime, or the error reading it.
type cpuSample map[int]cpuReading

type cpuReading struct {
	cpu time.Duration
	err error
}

func readCPU(pids []int) cpuSample {
	s := cpuSample{}
	for _, pid := range pids {
		cpu, err := procCPU(pid)
		s[pid] = cpuReading{cpu, err}
	}
	return s
}

// procCPU reads utime+stime of a process (all its threads) from
// /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads fields 14 and 15 (utime, stime) of a /proc/PID/stat line.
// The command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so the fields are counted after the last ')'.
func parseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat: too few fields")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// procHWM reads VmHWM (peak resident set, kB) from /proc/PID/status.
func procHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseHWM(f)
}

func parseHWM(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// CheckServerPID reports why a server PID's CPU time cannot be read (nil
// when it can): a mistyped or foreign PID would measure nothing.
func CheckServerPID(pid int) error {
	if _, err := procCPU(pid); err != nil {
		return fmt.Errorf("reading its CPU time: %w", err)
	}
	return nil
}

func serverUsage(pids []int, before, after cpuSample, ok int) *ServerUsage {
	u := &ServerUsage{}
	var total time.Duration
	var rss int64
	cpuKnown, rssKnown := true, true
	for _, pid := range pids {
		p := PIDUsage{PID: pid}
		b, a := before[pid], after[pid]
		switch {
		case b.err != nil:
			p.Error = b.err.Error()
		case a.err != nil:
			p.Error = a.err.Error()
		default:
			d := a.cpu - b.cpu
			total += d
			if d == 0 && ok >= IdleEnrollments*len(pids) {
				p.Idle = true
				cpuKnown, rssKnown = false, false
			}
			secs := d.Seconds()
			p.CPUSeconds = &secs
			if hwm, err := procHWM(pid); err == nil {
				p.PeakRSSKB = &hwm
				rss += hwm
			} else {
				rssKnown = false
			}
		}
		if p.Error != "" {
			cpuKnown, rssKnown = false, false
		}
		u.PerPID = append(u.PerPID, p)
	}
	if cpuKnown {
		secs := total.Seconds()
		u.CPUSeconds = &secs
		if ok > 0 {
			ms := float64(total) / float64(time.Millisecond) / float64(ok)
			u.CPUMsPerEnroll = &ms
		}
	}
	if rssKnown {
		u.PeakRSSKB = &rss
	}
	return u
}

// loadToolUsage is process pid's CPU between two samples of it, per
// successful enrollment (ok) as the server's is: with none, not measured.
func loadToolUsage(pid int, before, after cpuSample, ok int, elapsed time.Duration) *LoadToolUsage {
	b, a := before[pid], after[pid]
	if b.err != nil || a.err != nil || elapsed <= 0 {
		return nil
	}
	d := a.cpu - b.cpu
	u := &LoadToolUsage{CPUSeconds: d.Seconds(), Cores: d.Seconds() / elapsed.Seconds()}
	if ok > 0 {
		ms := float64(d) / float64(time.Millisecond) / float64(ok)
		u.CPUMsPerEnroll = &ms
	}
	return u
}
