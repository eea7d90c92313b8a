package ndes

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"github.com/scepter/scepter/internal/loglimit"
	"github.com/scepter/scepter/internal/pki"
)

// Lockout tunes the back-off after failed logins to the page; zero fields
// take the defaults below.
//
// Per client address, after Failures wrong logins within Window the
// address is locked out for Base, and every further wrong login after its
// lockout ends doubles that, up to Max. While locked out every request is
// answered 429 with Retry-After, before its credentials are looked at, so
// a correct password guessed during the lockout is refused too and the
// lockout tells nothing about it. A correct login outside a lockout clears
// the address's record; so does a Window without failures after the last
// lockout ended.
//
// The records live in this process's memory (per node), at most
// MaxClients of them, the least recently failed forgotten first.
type Lockout struct {
	Failures   int
	Window     time.Duration
	Base       time.Duration
	Max        time.Duration
	MaxClients int
}

// Lockout defaults.
const (
	DefaultLockoutFailures   = 5
	DefaultLockoutWindow     = 15 * time.Minute
	DefaultLockoutBase       = time.Minute
	DefaultLockoutMax        = 15 * time.Minute
	DefaultLockoutMaxClients = 4096
)

func (l Lockout) withDefaults() Lockout {
	if l.Failures <= 0 {
		l.Failures = DefaultLockoutFailures
	}
	if l.Window <= 0 {
		l.Window = DefaultLockoutWindow
	}
	if l.Base <= 0 {
		l.Base = DefaultLockoutBase
	}
	if l.Max <= 0 {
		l.Max = DefaultLockoutMax
	}
	l.Max = max(l.Max, l.Base)
	if l.MaxClients <= 0 {
		l.MaxClients = DefaultLockoutMaxClients
	}
	return l
}

// failures keeps the failed-login records.
type failures struct {
	cfg Lockout

	mu      sync.Mutex
	records map[netip.Addr]*list.Element
	lru     list.List // of *record, most recently failed at the front
}

type record struct {
	addr        netip.Addr
	count       int       // wrong logins since the record started
	lockedUntil time.Time // zero when never locked
	forgetAt    time.Time // a Window after the last failure or lockout
	// refused counts the requests refused during a lockout, so that they
	// are recorded at most once per RefusalRecordEvery, as the console
	// records logins refused during its lockouts.
	refused loglimit.Window
}

// RefusalRecordEvery is how often the requests one address sends while it
// is locked out are recorded at most (in the log and the audit trail),
// each record counting those held back since the last: a flood at a
// locked-out address writes a row a minute, not one each.
const RefusalRecordEvery = time.Minute

func newFailures(cfg Lockout) *failures {
	return &failures{cfg: cfg.withDefaults(), records: map[netip.Addr]*list.Element{}}
}

// locked reports how long addr stays locked out (0: it is not). While it
// is, the request is counted as refused, and toRecord says how many refused
// requests to record now, this one included (0: none now; a later record
// counts this one).
func (f *failures) locked(addr netip.Addr, now time.Time) (wait time.Duration, toRecord int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.records[addr]
	if !ok {
		return 0, 0
	}
	r := e.Value.(*record)
	if !now.Before(r.lockedUntil) {
		return 0, 0
	}
	if pass, dropped, _ := r.refused.Admit(now, 1, RefusalRecordEvery); pass {
		toRecord = dropped + 1
	}
	return r.lockedUntil.Sub(now), toRecord
}

// fail records a wrong login and returns the lockout it starts (0: none).
func (f *failures) fail(addr netip.Addr, now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgetExpired(now)
	var r *record
	if e, ok := f.records[addr]; ok {
		r = e.Value.(*record)
		f.lru.MoveToFront(e)
	} else {
		if len(f.records) >= f.cfg.MaxClients {
			f.remove(f.lru.Back())
		}
		r = &record{addr: addr}
		f.records[addr] = f.lru.PushFront(r)
	}
	r.count++
	var lock time.Duration
	if extra := r.count - f.cfg.Failures; extra >= 0 {
		lock = f.cfg.Max
		if extra < 32 { // beyond that the shift overflows; Max applies anyway
			lock = min(f.cfg.Max, f.cfg.Base<<extra)
		}
		r.lockedUntil = now.Add(lock)
	}
	r.forgetAt = now.Add(lock + f.cfg.Window)
	return lock
}

// succeed clears addr's record after a correct login.
func (f *failures) succeed(addr netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.records[addr]; ok {
		f.remove(e)
	}
}

// forgetExpired drops records whose time is up, from the least recently
// failed. The list is in order of last failure, which forgetAt mostly
// follows; where a longer lockout keeps an older record due later, the
// younger ones behind it wait, which delays forgetting but never drops a
// live record early.
func (f *failures) forgetExpired(now time.Time) {
	for e := f.lru.Back(); e != nil; e = f.lru.Back() {
		if now.Before(e.Value.(*record).forgetAt) {
			return
		}
		f.remove(e)
	}
}

func (f *failures) remove(e *list.Element) {
	delete(f.records, e.Value.(*record).addr)
	f.lru.Remove(e)
}

// tracked is how many addresses have a record (for tests).
func (f *failures) tracked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.records)
}

// clientKey is the address a record belongs to: an IPv4 address, or an
// IPv6 address's /64 (one host usually holds a whole /64). An unparseable
// address gives the zero Addr: one record shared by all such requests.
func clientKey(host string) netip.Addr {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return pki.ClientGroup(a)
}
