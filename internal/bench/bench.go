// Package bench is the engine of `scepter bench`: a load generator for SCEP
// PKCSReq and EST simpleenroll that does its expensive work (client keys,
// CSRs, self-signed signer certificates, GetCACert and GetCACaps) before
// the clock starts, spreads enrollments round-robin across one or more
// URLs, verifies every certificate it receives (chain, key, serial
// uniqueness per issuer) and reports throughput, latency, failures by
// reason and, given the servers' PIDs, their CPU time per enrollment.
//
// It talks to any RFC 8894 or RFC 7030 server through internal/client and
// the wire formats, like any other client.
package bench

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/scepter/scepter/internal/keys"
)

// Protocols Run drives.
const (
	SCEP = "scep"
	EST  = "est"
)

// DefaultCount is the number of enrollments when neither Count nor
// Duration is given: a run always ends by itself.
const DefaultCount = 100

// Options configure a run.
type Options struct {
	// Protocol is SCEP (default) or EST.
	Protocol string
	// URLs are the servers: SCEP URLs (http(s)://HOST/scep) or EST bases
	// (https://HOST:PORT[/.well-known/est][/LABEL]). Enrollment i goes to
	// URLs[i % len(URLs)]. A password in a SCEP URL's user info is sent,
	// but masked (xxxxx) wherever the run names the URL; an EST URL with
	// user info is refused (its credentials have flags of their own).
	URLs []string
	// Profile, when set, is appended to each URL (/scep/PROFILE,
	// /.well-known/est/PROFILE).
	Profile string
	// Concurrency is the number of workers, each with its own kept-alive
	// connections (default 1).
	Concurrency int
	// Count bounds the number of enrollments, Duration the time the clock
	// runs; the run stops at whichever comes first. Neither: DefaultCount.
	// Enrollments in flight when Duration ends get Drain (at most
	// Timeout) to finish; then they are cancelled and fail as unfinished.
	Count    int
	Duration time.Duration
	// Drain is that time after Duration (default DrainTime); a test of a
	// hung server sets it short so as not to wait the default out.
	Drain time.Duration
	// Challenge is the SCEP challengePassword; for EST without ESTUser and
	// ESTPassword it is the HTTP Basic password.
	Challenge string
	// ESTUser and ESTPassword are the HTTP Basic credentials for EST.
	ESTUser, ESTPassword string
	// KeyType of the client keys (keys.RSA2048 by default).
	KeyType string
	// Pool is the number of client keys made before the clock starts
	// (default: Count, at most 1000; without a Count, or beside a Duration
	// with a Count beyond MaxPrepared, 1000 EC keys or 100 RSA keys:
	// defaultPool and poolCount). With fewer keys than enrollments keys
	// are reused, each enrollment still with its own CSR and subject as
	// long as pre-built CSRs last (see PoolCSRs).
	Pool int
	// Timeout bounds each enrollment (default 30 s), and the setup before
	// the clock, which Duration bounds too when it is shorter.
	Timeout time.Duration
	// CAFingerprint ("sha256:HEX") must match one of the CA certificates
	// the server sends; Roots, when set, are the trust anchors: the EST
	// server's TLS certificate (and a SCEP https URL's) must chain to them,
	// and for SCEP one of the GetCACert certificates must chain to them.
	CAFingerprint string
	Roots         *x509.CertPool
	// RootsFile names the file Roots were read from (--cacert), for the
	// errors that say what to check when the server does not chain to
	// them.
	RootsFile string
	// ServerPIDs are the server processes whose CPU time (utime+stime from
	// /proc/PID/stat) is read before and after the run; Run refuses one
	// that cannot be read at the start.
	ServerPIDs []int
	// ServerProfile, when set, is the address of a server's profiling
	// endpoints (its --pprof-listen, as http://HOST:PORT): as the clock
	// starts, a CPU profile of the server over Duration is asked from it and
	// written to ServerProfileOut. It needs Duration.
	ServerProfile    string
	ServerProfileOut io.Writer
	// SerialsOut, when set, receives a line per certificate received,
	// good or not: "SERIAL-HEX ISSUER-ID URL" (ISSUER-ID is the hex SHA-256
	// of the issuing CA certificate, "-" for one signed by none of the CA
	// certificates; URL with its password masked).
	SerialsOut io.Writer
	// Progress, when set, receives what the run is doing: pool building,
	// and a line every ProgressInterval (default 1 s) while the clock runs.
	Progress         io.Writer
	ProgressInterval time.Duration
	// Now is the clock for signingTime, signer certificates and validity
	// checks; nil means time.Now. Tests against a server with a pinned
	// clock pass that clock.
	Now func() time.Time
	// MaxReasons is how many failure messages are kept verbatim, the first
	// of each reason (default 5).
	MaxReasons int
	// KeepIssued keeps every certificate received in Result.Issued.
	KeepIssued bool
	// OnClock makes every enrollment build its request (sign, encrypt)
	// and check its reply (decrypt, verify) on the clock, as a device
	// would. Otherwise, when Count is set and at most MaxPrepared, SCEP
	// requests are built before the clock starts and replies are checked
	// after it stops, so that the latencies and the rate are the server's
	// and not the load tool's own CPU, shared by its workers. Prepared
	// requests carry the signingTime of when they were built: a server
	// that accepts little clock skew may refuse the last of a long run
	// (failInfo badTime), which OnClock avoids.
	OnClock bool
}

// MaxPrepared bounds the SCEP requests built before the clock (and the
// replies kept until after it): the load tool's peak RSS grows by about
// 18 KB per request with its reply (367 MB for 20,000 RSA-2048 ones, with
// the runtime's default GOGC), so 10,000 cost about 180 MB. Longer runs
// build and check on the clock.
const MaxPrepared = 10000

// Result is what a run measured.
type Result struct {
	Protocol    string   `json:"protocol"`
	URLs        []string `json:"urls"`
	Concurrency int      `json:"concurrency"`
	KeyType     string   `json:"key_type"`
	PoolKeys    int      `json:"pool_keys"`
	PoolCSRs    int      `json:"pool_csrs"`
	// Attempted is OK + Failed.
	Attempted int `json:"attempted"`
	OK        int `json:"ok"`
	Failed    int `json:"failed"`
	// Failures counts failures by reason: "failInfo:badRequest",
	// "http:503", "timeout", "connection reset", "verify:chain",
	// "unfinished" (no reply Drain after Duration ended), …
	Failures map[string]int `json:"failures"`
	// FirstErrors are the first failure messages of the first few reasons,
	// verbatim.
	FirstErrors []string `json:"first_errors"`
	// BadCerts counts certificates received that failed verification, and
	// signed replies that failed their checks (a CertRep of another
	// transaction or signer, say): a subset of Failed. A reply that is no
	// CMS at all (ReasonNotCMS: an empty body, a proxy's page) is a failed
	// request, not among them. Duplicates counts certificates whose (issuer,
	// serial) was received before in this run, whatever else is wrong with
	// either: each is a failed enrollment, counted once, as
	// "verify:duplicate" when nothing else is wrong with it (not in
	// BadCerts), else by the other fault (in BadCerts).
	BadCerts   int `json:"bad_certs"`
	Duplicates int `json:"duplicate_serials"`
	// ElapsedSeconds is the clock: from the first request to the end of
	// the last; Rate is OK per second of it. Enrollments cut off as
	// unfinished do not stretch it: the drain after Duration in which they
	// got no reply is left out (the clock then stops at the last reply, or
	// at Duration if that came earlier), so that a server that stopped
	// answering shows the rate at which it answered.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Rate           float64 `json:"enrollments_per_second"`
	// Latency of successful enrollments, in milliseconds: all of the
	// enrollment's time on the clock, which includes the load tool's own
	// signing, encryption and decryption unless Prepared. Nil (null) when
	// none succeeded: not measured, not 0.
	Latency *Latency `json:"latency_ms"`
	// RoundTrip is the part of each successful enrollment's Latency spent
	// waiting for the server: from sending the HTTP request to the reply's
	// headers. The rest is the load tool's work (and its waits for its own
	// CPU, shared by the workers). Nil as Latency is.
	RoundTrip *Latency `json:"round_trip_ms"`
	// PerURL counts outcomes per URL, in the order of Options.URLs.
	PerURL []URLStats `json:"per_url"`
	// Prepared tells whether requests were built before the clock and
	// replies checked after it (see Options.OnClock).
	Prepared bool `json:"prepared"`
	// ServerProfileSeconds is the window of the server's CPU profile
	// (Options.ServerProfile): Duration in whole seconds, rounded up, from
	// the clock's start. A run that ended sooner (at Count, or with every
	// request failing fast) leaves the rest of it idle, while Server's CPU
	// covers the run only; ProfileOutlasted says so. 0 without a profile.
	ServerProfileSeconds float64 `json:"server_profile_seconds,omitempty"`
	// Server is the servers' resource use, when ServerPIDs were given.
	Server *ServerUsage `json:"server,omitempty"`
	// LoadTool is this process's CPU use while the clock ran: when it
	// nears a whole core, its own waits are part of the latencies.
	LoadTool *LoadToolUsage `json:"load_tool,omitempty"`
	// Issued are the certificates received (Options.KeepIssued only).
	Issued []Issued `json:"-"`
}

// LoadToolUsage is the load tool's CPU use while the clock ran.
type LoadToolUsage struct {
	CPUSeconds     float64  `json:"cpu_seconds"`
	CPUMsPerEnroll *float64 `json:"cpu_ms_per_enrollment"` // per successful enrollment; nil (null) for none
	// Cores is CPUSeconds over the clock's seconds: 1 is one core kept
	// busy the whole time.
	Cores float64 `json:"cores"`
}

// Latency summarises successful enrollments' latencies in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// URLStats are one URL's outcomes.
type URLStats struct {
	URL    string `json:"url"`
	OK     int    `json:"ok"`
	Failed int    `json:"failed"`
}

// Issued is one certificate received.
type Issued struct {
	Serial   string // lower-case hex in whole bytes (pki.SerialText)
	IssuerID string // hex SHA-256 of the issuing CA certificate; "" for none of them
	URL      string // with its password masked
	Cert     *x509.Certificate
}

// ExitError reports whether the result should make the command fail: any
// certificate (or signed reply) that failed verification or repeated a
// serial, no enrollment at all that succeeded, or (unless allowFailures)
// any other failed enrollment: refused, lost, or answered with no CMS at
// all. nil when all is well.
func (r *Result) ExitError(allowFailures bool) error {
	var why []string
	if r.BadCerts > 0 {
		// verify:reply counts signed replies that failed their checks and
		// hold no certificate to count.
		why = append(why, count(r.BadCerts, "reply or certificate", "replies or certificates")+" failed verification")
	}
	if r.Duplicates > 0 {
		why = append(why, count(r.Duplicates, "duplicate serial", "duplicate serials"))
	}
	if r.OK == 0 {
		why = append(why, "no enrollment succeeded")
	} else if other := r.Failed - r.BadCerts - r.Failures["verify:"+kindDuplicate]; other > 0 && !allowFailures {
		noun := "enrollment"
		if len(why) > 0 {
			// Beside bad certificates or duplicates, which are failed
			// enrollments too: these are the rest, not all of them.
			noun = "other enrollment"
		}
		why = append(why, count(other, noun, noun+"s")+" failed")
	}
	if len(why) == 0 {
		return nil
	}
	return errors.New(strings.Join(why, ", "))
}

// count is n with the noun in the number n takes: "1 enrollment", "2
// enrollments".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// enroller performs enrollment i, of a pre-built request, on one URL.
type enroller interface {
	// enroll sends the request and reads the reply; finish checks the
	// reply and returns the certificate. Run calls finish on the clock,
	// or after it stops when requests were prepared.
	enroll(ctx context.Context, w *worker, target, i int, item *poolItem) (finish func() (*x509.Certificate, error), err error)
}

// worker is one concurrent client: its own HTTP transport, so its
// connections are kept alive and its TLS sessions resumed.
type worker struct {
	http      *http.Client
	transport *http.Transport
}

// Run performs a benchmark run. It returns an error only when the run could
// not start (bad options, a server that does not answer GetCACert, …);
// failed enrollments are counted in the Result.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.normalise(); err != nil {
		return nil, err
	}
	if o.ServerProfile != "" {
		if err := checkProfiling(ctx, o.ServerProfile, o.Timeout); err != nil {
			return nil, err
		}
	}
	limit, bound := o.setupLimit()
	setupCtx, cancel := context.WithTimeout(ctx, limit)
	targets, err := connect(setupCtx, &o)
	timedOut := errors.Is(setupCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	if err != nil {
		if timedOut {
			// The step is named, but not what bounded it.
			return nil, fmt.Errorf("%w (the setup got no answer within %s %s)", err, bound, limit)
		}
		return nil, err
	}
	v, err := newVerifier(targets, o.Now)
	if err != nil {
		return nil, err
	}
	pool, err := buildPool(ctx, &o)
	if err != nil {
		return nil, err
	}
	prepare := !o.OnClock && o.Count > 0 && o.Count <= MaxPrepared
	var en enroller
	if o.Protocol == EST {
		en = newESTEnroller(&o, targets, pool)
	} else {
		se := &scepEnroller{o: &o, targets: targets, keys: pool.keys}
		if prepare {
			if err := se.prepare(ctx, pool); err != nil {
				return nil, err
			}
		}
		en = se
	}
	r := &run{o: &o, targets: targets, pool: pool, en: en, v: v, deferred: prepare}
	return r.do(ctx)
}

// setupLimit bounds the setup (GetCACaps, GetCACert, /cacerts) and names
// the option that bounds it: Timeout, or Duration when that is shorter, so
// that a server that accepts and never answers holds a run of --duration
// 3s no longer than that rather than the whole --timeout (r124).
func (o *Options) setupLimit() (time.Duration, string) {
	if o.Duration > 0 && o.Duration < o.Timeout {
		return o.Duration, "--duration"
	}
	return o.Timeout, "--timeout"
}

func (o *Options) normalise() error {
	if o.Protocol == "" {
		o.Protocol = SCEP
	}
	o.Protocol = strings.ToLower(o.Protocol)
	if o.Protocol != SCEP && o.Protocol != EST {
		return fmt.Errorf("protocol %q: want scep or est", o.Protocol)
	}
	if len(o.URLs) == 0 {
		return errors.New("no URL given")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.Count < 0 || o.Duration < 0 {
		return errors.New("count and duration cannot be negative")
	}
	if o.ServerProfile != "" && (o.Duration == 0 || o.ServerProfileOut == nil) {
		return errors.New("a server profile needs a duration (it covers the run's) and somewhere to write it")
	}
	// A PID listed twice (a script that adds the nodes' PIDs and "the"
	// server's) would be counted twice: the figures are sums.
	pids := make([]int, 0, len(o.ServerPIDs))
	for _, pid := range o.ServerPIDs {
		if slices.Contains(pids, pid) {
			continue
		}
		if err := CheckServerPID(pid); err != nil {
			return fmt.Errorf("server PID %d: %w", pid, err)
		}
		pids = append(pids, pid)
	}
	o.ServerPIDs = pids
	if o.Count == 0 && o.Duration == 0 {
		o.Count = DefaultCount
	}
	if o.KeyType == "" {
		o.KeyType = keys.RSA2048
	}
	if !keys.ValidKeyType(o.KeyType) {
		return fmt.Errorf("key type %q: want one of %s", o.KeyType, strings.Join(keys.KeyTypes, ", "))
	}
	if o.Pool <= 0 {
		o.Pool = defaultPool(o.poolCount(), o.KeyType)
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = DrainTime
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxReasons <= 0 {
		o.MaxReasons = 5
	}
	if o.Protocol == SCEP && o.Challenge == "" {
		return errors.New("SCEP enrollment needs a challenge")
	}
	if o.Protocol == EST && o.Challenge == "" && o.ESTUser == "" && o.ESTPassword == "" {
		return errors.New("EST enrollment needs credentials: a user and password, or a challenge")
	}
	return nil
}

// poolCount is the number of enrollments the pool is built for: Count, or
// 0, as for a run bounded by Duration alone, when Duration bounds a run
// whose Count is beyond MaxPrepared. Such a run builds its requests on the
// clock anyway, and its Count says little of what the Duration lets it
// reach: 20,000 CSRs took 200 s of preparation for a 2 s run that sent 89
// (r70 D2). A Count of at most MaxPrepared is built in full, Duration or
// not: its SCEP requests are signed and encrypted before the clock, which
// scripts/bench's profile run relies on.
func (o *Options) poolCount() int {
	if o.Duration > 0 && o.Count > MaxPrepared {
		return 0
	}
	return o.Count
}

// defaultPool is the number of client keys a run makes when not told: one
// per enrollment up to 1,000; for a run bounded by time alone, 1,000 EC
// keys but only 100 RSA keys, which take tens of milliseconds each to make
// (1,000 RSA-2048 keys kept a 5 s run waiting 51 s on a 2-core machine).
func defaultPool(count int, keyType string) int {
	switch {
	case count > 0:
		return min(count, 1000)
	case strings.HasPrefix(keyType, "rsa"):
		return 100
	}
	return 1000
}

// run is one run in progress.
type run struct {
	o       *Options
	targets []*target
	pool    *pool
	en      enroller
	v       *verifier
	// deferred: replies are checked after the clock stops.
	deferred bool

	next atomic.Int64 // the next enrollment's index
	done atomic.Int64
	fail atomic.Int64
	// start is when the clock started; lastEnd, since start, when the
	// last enrollment that was not cut off as unfinished ended.
	start   time.Time
	lastEnd atomic.Int64

	mu           sync.Mutex
	latencies    []time.Duration
	roundTrips   []time.Duration // of the same enrollments as latencies
	failures     map[string]int
	first        []string // the first failure of each reason, verbatim
	firstReasons map[string]bool
	badCerts     int
	perURL       []URLStats
	issued       []Issued
	serials      *bufio.Writer
	writeErr     error
	unchecked    []answered // deferred: replies to check after the clock
}

// answered is an enrollment whose reply is yet to be checked.
type answered struct {
	ti             int
	item           *poolItem
	finish         func() (*x509.Certificate, error)
	lat, roundTrip time.Duration
}

func (r *run) do(ctx context.Context) (*Result, error) {
	o := r.o
	r.failures = map[string]int{}
	r.firstReasons = map[string]bool{}
	r.perURL = make([]URLStats, len(r.targets))
	for i, t := range r.targets {
		r.perURL[i].URL = t.name
	}
	if o.SerialsOut != nil {
		r.serials = bufio.NewWriter(o.SerialsOut)
	}
	if o.Count > 0 {
		// Reserved for the count, but only up to what a prepared run
		// holds anyway: a huge --count bounded by --duration must not
		// reserve gigabytes for enrollments it never reaches.
		n := min(o.Count, MaxPrepared)
		r.latencies = make([]time.Duration, 0, n)
		r.roundTrips = make([]time.Duration, 0, n)
	}
	workers := make([]*worker, o.Concurrency)
	for i := range workers {
		workers[i] = newWorker(o)
	}
	defer func() {
		for _, w := range workers {
			w.transport.CloseIdleConnections()
		}
	}()

	self := os.Getpid()
	cpuBefore, toolBefore := readCPU(o.ServerPIDs), readCPU([]int{self})
	start := time.Now()
	r.start = start
	var deadline time.Time
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	stopProgress := r.progress(start)
	var profiled chan error
	if o.ServerProfile != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- fetchProfile(ctx, o.ServerProfile, o.Duration, o.Timeout, o.ServerProfileOut) }()
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx, w, deadline)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpuAfter, toolAfter := readCPU(o.ServerPIDs), readCPU([]int{self})
	clock := elapsed
	if r.cutOff() {
		// The drain in which the unfinished got no reply is no time
		// the server answered in: the clock stops at the last reply,
		// or at Duration if that came earlier.
		clock = min(elapsed, max(o.Duration, time.Duration(r.lastEnd.Load())))
	}
	stopProgress()
	r.checkDeferred(ctx)
	var profErr error
	if profiled != nil {
		// The profile spans Duration from the start: a run that reached
		// its count earlier waits for it (a profile cannot be cut short:
		// its endpoint answers only at the end of the seconds asked, and
		// merging shorter ones needs a profile parser this module lacks).
		// The result says so (ProfileOutlasted).
		profErr = <-profiled
	}

	res := r.result(clock)
	if profiled != nil {
		res.ServerProfileSeconds = profileSeconds(o.Duration).Seconds()
	}
	if len(o.ServerPIDs) > 0 {
		res.Server = serverUsage(o.ServerPIDs, cpuBefore, cpuAfter, res.OK)
	}
	res.LoadTool = loadToolUsage(self, toolBefore, toolAfter, res.OK, elapsed)
	if r.serials != nil {
		if err := r.serials.Flush(); err != nil && r.writeErr == nil {
			r.writeErr = err
		}
		if r.writeErr != nil {
			return res, fmt.Errorf("writing serials: %w", r.writeErr)
		}
	}
	return res, profErr
}

// ProfileOutlasted tells, for a run with a server profile that ended before
// the profile's window, that the profile's last part is no time of the run:
// the server sat idle in it (but for its own background work), and the
// profile does not cover the same time as Server's CPU. "" otherwise.
func (r *Result) ProfileOutlasted() string {
	if r.ServerProfileSeconds == 0 || r.ElapsedSeconds >= r.ServerProfileSeconds {
		return ""
	}
	return fmt.Sprintf("the run ended after %.2fs, before the server profile's %.0fs: its last %.2fs are no time of the run (the server idle), while --server-pid's CPU covers the run only; for a profile of the run alone, bound it by --duration only",
		r.ElapsedSeconds, r.ServerProfileSeconds, r.ServerProfileSeconds-r.ElapsedSeconds)
}

// DrainTime bounds how long enrollments still in flight when Duration ends
// are waited for (never longer than Timeout): a run bounded by time ends
// soon after it, even when a server has stopped answering.
const DrainTime = 5 * time.Second

// errUnfinished is the cause of an enrollment cancelled because the run's
// Duration and DrainTime ended before its reply came.
var errUnfinished = errors.New("no reply when the run's duration (and its drain time) ended")

// unfinishedError is an enrollment cut off by errUnfinished.
type unfinishedError struct{ err error }

func (e *unfinishedError) Error() string {
	if errors.Is(e.err, errUnfinished) { // net/http names the cause itself
		return e.err.Error()
	}
	return fmt.Sprintf("%v: %v", errUnfinished, e.err)
}
func (e *unfinishedError) Unwrap() error { return e.err }

// work runs enrollments until the count or the deadline is reached or ctx
// ends. An enrollment that has started runs to its end, its timeout, or
// DrainTime after the deadline, whichever comes first.
func (r *run) work(ctx context.Context, w *worker, deadline time.Time) {
	o := r.o
	var pause time.Duration // after a refused connection
	for ctx.Err() == nil {
		if pause > 0 && !sleepUntil(ctx, deadline, pause) {
			return
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return
		}
		i := int(r.next.Add(1) - 1)
		if o.Count > 0 && i >= o.Count {
			return
		}
		ti := i % len(r.targets)
		item := r.pool.item(i)
		rctx, cancel := context.WithTimeout(ctx, o.Timeout)
		if !deadline.IsZero() {
			end := deadline.Add(min(o.Drain, o.Timeout))
			var cancelDrain context.CancelFunc
			rctx, cancelDrain = context.WithDeadlineCause(rctx, end, errUnfinished)
			cancelTimeout := cancel
			cancel = func() { cancelDrain(); cancelTimeout() }
		}
		ex := &exchange{}
		rctx = context.WithValue(rctx, exchangeKey{}, ex)
		t0 := time.Now()
		finish, err := r.en.enroll(rctx, w, ti, i, item)
		unfinished := err != nil && errors.Is(context.Cause(rctx), errUnfinished)
		if unfinished {
			err = &unfinishedError{err}
		}
		if err == nil && r.deferred {
			lat := time.Since(t0)
			r.noteEnd()
			cancel()
			r.done.Add(1)
			r.mu.Lock()
			r.unchecked = append(r.unchecked, answered{ti: ti, item: item, finish: finish, lat: lat, roundTrip: ex.roundTrip})
			r.mu.Unlock()
			continue
		}
		var cert *x509.Certificate
		if err == nil {
			cert, err = finish()
		}
		lat := time.Since(t0)
		if !unfinished {
			r.noteEnd()
		}
		cancel()
		r.check(ti, item, cert, lat, ex.roundTrip, err)
		pause = nextPause(pause, err)
	}
}

// noteEnd records that an enrollment ended now, with a reply or a failure
// other than being cut off as unfinished.
func (r *run) noteEnd() {
	end := int64(time.Since(r.start))
	for {
		last := r.lastEnd.Load()
		if end <= last || r.lastEnd.CompareAndSwap(last, end) {
			return
		}
	}
}

// cutOff reports whether enrollments were cut off as unfinished.
func (r *run) cutOff() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures["unfinished"] > 0
}

// nextPause is how long a worker waits before its next enrollment: after a
// refused connection (a server that died or restarts), or an HTTP 503 or
// 429 (a server whose store is out of reach, or that is busy or limits
// this address), 10 ms, doubling up to a second while the refusals go on,
// so that the load tool does not turn into a flood counting thousands of
// failures a second (r82: some 7,000 in 5 s of a PostgreSQL outage);
// nothing after any other outcome.
func nextPause(pause time.Duration, err error) time.Duration {
	var se *statusError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, syscall.ECONNREFUSED),
		errors.As(err, &se) && (se.status == http.StatusServiceUnavailable || se.status == http.StatusTooManyRequests):
		return min(max(2*pause, 10*time.Millisecond), time.Second)
	}
	return 0
}

// sleepUntil waits d, or until ctx ends or the deadline (if any) passes;
// false when the run is over.
func sleepUntil(ctx context.Context, deadline time.Time, d time.Duration) bool {
	if !deadline.IsZero() {
		d = min(d, time.Until(deadline))
	}
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// check verifies an enrollment's certificate and records the outcome. A
// certificate may come with an error (a reply that holds only another
// key's): it is checked all the same, for its issuer, and recorded.
func (r *run) check(ti int, item *poolItem, cert *x509.Certificate, lat, roundTrip time.Duration, err error) {
	issuerID, err := r.verify(item, cert, err)
	r.record(ti, issuerID, cert, lat, roundTrip, err)
}

// verify is check's verification: the certificate's issuer ID, and err
// or, when that is nil, what is wrong with the certificate.
func (r *run) verify(item *poolItem, cert *x509.Certificate, err error) (string, error) {
	if cert == nil {
		return "", err
	}
	issuerID, verr := r.v.check(cert, item.spki)
	if err == nil {
		err = verr
	}
	return issuerID, err
}

// checkDeferred checks, on every core, the replies the clock did not wait
// for.
func (r *run) checkDeferred(ctx context.Context) {
	if len(r.unchecked) == 0 {
		return
	}
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, "bench: checking %d replies (after the clock)\n", len(r.unchecked))
	}
	// Counted again by record, as ok or failed.
	r.done.Store(0)
	type verified struct {
		issuerID string
		cert     *x509.Certificate
		err      error
	}
	results := make([]verified, len(r.unchecked))
	_, _ = parallel(context.WithoutCancel(ctx), len(r.unchecked), func(i int) error {
		a := r.unchecked[i]
		cert, err := a.finish()
		issuerID, err := r.verify(a.item, cert, err)
		results[i] = verified{issuerID, cert, err}
		return nil
	})
	// Recorded in the order the replies came, not the order the cores
	// checked them: of two copies of a serial, the later one is the
	// duplicate, as with the checks on the clock (r143 D1: the genuine
	// certificate was at times failed as the duplicate of the copy).
	for i, a := range r.unchecked {
		res := results[i]
		r.record(a.ti, res.issuerID, res.cert, a.lat, a.roundTrip, res.err)
	}
	r.unchecked = nil
}

// record counts one enrollment's outcome. Every certificate received,
// good or not, has its serial recorded and is listed (SerialsOut,
// Issued). One whose serial was received before fails (verify:duplicate,
// unless it fails already for another reason): it is no enrollment a
// client could use, and counts in neither OK, the rate nor the latencies.
func (r *run) record(ti int, issuerID string, cert *x509.Certificate, lat, roundTrip time.Duration, err error) {
	t := r.targets[ti]
	if cert != nil {
		serial, dupErr := r.v.record(cert)
		switch {
		case err == nil:
			err = dupErr
		case dupErr != nil:
			// Counted by its other fault; the message says both.
			err = fmt.Errorf("%w; and serial (hex) %s was received before from the same issuer", err, serial)
		}
		listedID := issuerID
		if listedID == "" {
			listedID = "-" // signed by none of the CA certificates
		}
		r.mu.Lock()
		if r.serials != nil && r.writeErr == nil {
			_, r.writeErr = fmt.Fprintf(r.serials, "%s %s %s\n", serial, listedID, t.name)
		}
		if r.o.KeepIssued {
			r.issued = append(r.issued, Issued{Serial: serial, IssuerID: issuerID, URL: t.name, Cert: cert})
		}
		r.mu.Unlock()
	}
	if err != nil {
		r.fail.Add(1)
		reason := classify(err)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.failures[reason]++
		r.perURL[ti].Failed++
		if strings.HasPrefix(reason, "verify:") && reason != "verify:"+kindDuplicate {
			r.badCerts++
		}
		if len(r.first) < r.o.MaxReasons && !r.firstReasons[reason] {
			r.firstReasons[reason] = true
			r.first = append(r.first, fmt.Sprintf("%s: %s: %v", t.name, reason, err))
		}
		return
	}
	r.done.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latencies = append(r.latencies, lat)
	r.roundTrips = append(r.roundTrips, roundTrip)
	r.perURL[ti].OK++
}

// progress prints a line every interval until the returned func is called.
func (r *run) progress(start time.Time) func() {
	if r.o.Progress == nil {
		return func() {}
	}
	okWord := "ok"
	if r.deferred {
		okWord = "replies" // checked after the clock
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(r.o.ProgressInterval)
		defer tick.Stop()
		var lastDone int64
		last := start
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				done, failed := r.done.Load(), r.fail.Load()
				rate := float64(done-lastDone) / now.Sub(last).Seconds()
				fmt.Fprintf(r.o.Progress, "bench: %5.1fs  %s %d  failed %d  %.1f/s (overall %.1f/s)\n",
					now.Sub(start).Seconds(), okWord, done, failed, rate, float64(done)/now.Sub(start).Seconds())
				lastDone, last = done, now
			}
		}
	}()
	return func() {
		close(stop)
		<-finished
	}
}

func (r *run) result(elapsed time.Duration) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.o
	res := &Result{
		Protocol: o.Protocol, Concurrency: o.Concurrency, KeyType: o.KeyType,
		PoolKeys: len(r.pool.keys), PoolCSRs: len(r.pool.items),
		OK: len(r.latencies), Failures: r.failures, FirstErrors: r.first, BadCerts: r.badCerts,
		Duplicates: r.v.duplicates(), ElapsedSeconds: elapsed.Seconds(), PerURL: r.perURL, Issued: r.issued,
		Prepared: r.deferred,
	}
	for _, t := range r.targets {
		res.URLs = append(res.URLs, t.name)
	}
	if res.FirstErrors == nil {
		res.FirstErrors = []string{}
	}
	for _, n := range r.failures {
		res.Failed += n
	}
	res.Attempted = res.OK + res.Failed
	if elapsed > 0 {
		res.Rate = float64(res.OK) / elapsed.Seconds()
	}
	res.Latency = summarise(r.latencies)
	res.RoundTrip = summarise(r.roundTrips)
	return res
}

// summarise sorts the latencies and returns their summary (nearest rank);
// nil for none.
func summarise(l []time.Duration) *Latency {
	if len(l) == 0 {
		return nil
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rank := func(p float64) float64 {
		k := int(p*float64(len(l))+0.999999) - 1
		return ms(l[max(0, min(k, len(l)-1))])
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return &Latency{Mean: ms(sum) / float64(len(l)), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: ms(l[len(l)-1])}
}
