package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/bench"
	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/config"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
)

// benchFlags are the flags of `scepter bench`.
type benchFlags struct {
	urls, pids                      stringList
	protocol, profile, keyType      string
	concurrency, count, pool        int
	duration, timeout               time.Duration
	countGiven, durationGiven       bool // an explicit 0 is not the default
	challenge, challengeFile        string
	estUser, estPassword, estPWFile string
	fingerprint, cacert             string
	asJSON, quiet, allowFailures    bool
	onClock                         bool
	serialsOut                      string
	serverProfile, serverProfileOut string
}

func cmdBench(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "bench", "bench --url URL [--url URL2 ...] --challenge X [--protocol scep|est] [--concurrency N] [--count N | --duration D] [flags]")
	var f benchFlags
	fs.Var(&f.urls, "url", "server URL (repeatable, or comma-separated; enrollments go round-robin): SCEP http://HOST:8080/scep, EST https://HOST:8443")
	fs.StringVar(&f.protocol, "protocol", "scep", "scep (PKCSReq) or est (simpleenroll)")
	fs.IntVar(&f.concurrency, "concurrency", 1, "concurrent clients, each with its own kept-alive connections")
	fs.IntVar(&f.count, "count", 0, fmt.Sprintf("enrollments to make (default %d when --duration is not given either; 0 beside a --duration: as many as it allows); a count of at most %d has all its requests built before the clock, also beside a --duration that ends the run before it uses them; a larger one beside a --duration builds the pool of --duration alone", bench.DefaultCount, bench.MaxPrepared))
	fs.DurationVar(&f.duration, "duration", 0, fmt.Sprintf("stop after this long (with --count: at whichever comes first); enrollments still in flight then get %v more (at most --timeout), then fail as unfinished, a wait not counted in the rate", bench.DrainTime))
	fs.StringVar(&f.challenge, "challenge", "", "challenge password (SCEP; for EST the HTTP Basic password when no --est-user)")
	fs.StringVar(&f.challengeFile, "challenge-file", "", "file holding the challenge password")
	fs.StringVar(&f.estUser, "est-user", "", "EST: HTTP Basic user")
	fs.StringVar(&f.estPassword, "est-password", "", "EST: HTTP Basic password (prefer --est-password-file or SCEPTER_EST_PASSWORD)")
	fs.StringVar(&f.estPWFile, "est-password-file", "", "EST: file whose first line is the HTTP Basic password")
	fs.StringVar(&f.profile, "profile", "", "profile: appended to each URL (/scep/PROFILE, /.well-known/est/PROFILE)")
	fs.StringVar(&f.keyType, "key-type", keys.RSA2048, "client key type: "+strings.Join(keys.KeyTypes, ", "))
	fs.IntVar(&f.pool, "pool", 0, "client keys made before the clock starts (default: --count, at most 1000; with --duration alone, or beside it a --count above "+strconv.Itoa(bench.MaxPrepared)+", 1000 EC or 100 RSA keys); fewer keys than enrollments are reused, each with CSRs of their own")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "time limit of each enrollment, and of the setup before the clock (GetCACaps, GetCACert, /cacerts), which a shorter --duration bounds instead")
	fingerprintVar(fs, &f.fingerprint, "trust the CA whose SHA-256 is this (`sha256:HEX`), as sent by GetCACert or /cacerts")
	fs.StringVar(&f.cacert, "cacert", "", "PEM file of the CA(s) to trust (EST: the server's TLS certificate must chain to them); without it or --ca-fingerprint, certificates are checked against whatever CA certificates the server sends, and over https the TLS certificate against this host's trusted CAs")
	fs.Var(&f.pids, "server-pid", "server PID (repeatable, one per node): report its CPU time per enrollment and peak RSS")
	fs.BoolVar(&f.asJSON, "json", false, "print the summary as JSON on stdout (the text summary goes to stderr unless --quiet)")
	fs.StringVar(&f.serverProfile, "server-profile", "", "the server's profiling endpoints (its --pprof-listen, as http://127.0.0.1:6060): take a CPU profile of it over --duration from the clock's start (needs --duration; a run that ends sooner leaves the rest idle and says so) and write it to --server-profile-out, for go tool pprof")
	fs.StringVar(&f.serverProfileOut, "server-profile-out", "server-cpu.pprof", "file for --server-profile's CPU profile")
	fs.StringVar(&f.serialsOut, "serials-out", "", "write a line per certificate received: SERIAL-HEX ISSUER-ID URL")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines")
	fs.BoolVar(&f.onClock, "on-clock", false, fmt.Sprintf("sign and encrypt each request and check each reply on the clock, as devices do (default: with a --count of at most %d, SCEP requests are built before the clock starts and replies checked after it stops, so that the figures are the server's, not the load tool's; their signingTime is when they were built)", bench.MaxPrepared))
	fs.BoolVar(&f.allowFailures, "allow-failures", false, "exit 0 despite failed enrollments: requests refused, lost, or answered with no CMS at all, such as a proxy's HTML page (never despite a bad certificate, a signed reply that fails its checks, or a duplicate serial)")
	if err := parseFlags(fs, e, args, 0, nil); err != nil {
		return err
	}
	f.countGiven, f.durationGiven = givenExplicitly(fs, e, "count"), givenExplicitly(fs, e, "duration")
	o, err := f.options(e)
	if err != nil {
		return err
	}
	var serials *os.File
	if f.serialsOut != "" {
		if serials, err = os.Create(f.serialsOut); err != nil {
			return err
		}
		defer serials.Close()
		o.SerialsOut = serials
	}
	var profile *os.File
	if f.serverProfile != "" {
		if profile, err = os.Create(f.serverProfileOut); err != nil {
			return fmt.Errorf("--server-profile-out: %w", err)
		}
		defer profile.Close()
		o.ServerProfile, o.ServerProfileOut = f.serverProfile, profile
	}
	res, err := bench.Run(ctx, o)
	if profile != nil && err != nil {
		// No profile came: leave no empty file that looks like one.
		if st, serr := profile.Stat(); serr == nil && st.Size() == 0 {
			profile.Close()
			os.Remove(f.serverProfileOut)
			profile = nil
		}
	}
	if res == nil {
		return err
	}
	if serials != nil {
		if cerr := serials.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("--serials-out: %w", cerr)
		}
	}
	if profile != nil {
		if cerr := profile.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("--server-profile-out: %w", cerr)
		}
	}
	if f.asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(res); jerr != nil {
			return jerr
		}
		if !f.quiet {
			printBenchSummary(e.stderr, res)
		}
	} else {
		printBenchSummary(e.stdout, res)
	}
	// Said even with --quiet: the profile written is not what its name
	// and README promise, a profile of the run.
	if note := res.ProfileOutlasted(); note != "" {
		fmt.Fprintf(e.stderr, "warning: %s\n", note)
	}
	if err != nil {
		return err
	}
	if xerr := res.ExitError(f.allowFailures); xerr != nil {
		return fmt.Errorf("bench: %w", xerr)
	}
	return nil
}

// options turns the flags into bench.Options.
func (f *benchFlags) options(e env) (bench.Options, error) {
	o := bench.Options{URLs: f.urls, Protocol: strings.ToLower(f.protocol), Profile: f.profile, Concurrency: f.concurrency,
		Count: f.count, Duration: f.duration, KeyType: f.keyType, Pool: f.pool, Timeout: f.timeout,
		CAFingerprint: f.fingerprint, ESTUser: f.estUser, ESTPassword: f.estPassword,
		// The clock every other command uses (signingTime, validity).
		Now: pki.SystemClock{}.Now}
	if len(f.urls) == 0 {
		return o, usageError{"--url is required"}
	}
	if o.Protocol != bench.SCEP && o.Protocol != bench.EST {
		return o, usageError{fmt.Sprintf("--protocol %q: want scep or est", f.protocol)}
	}
	if f.concurrency < 1 || f.count < 0 || f.duration < 0 || f.pool < 0 || f.timeout <= 0 {
		return o, usageError{"--concurrency and --timeout must be positive, --count, --duration and --pool not negative"}
	}
	if f.count == 0 && f.duration == 0 && (f.countGiven || f.durationGiven) {
		// Read as "not given", it would make the default 100.
		return o, usageError{"--count 0 and --duration 0 bound nothing: give a positive --count or --duration (or neither, for " + strconv.Itoa(bench.DefaultCount) + " enrollments)"}
	}
	if !keys.ValidKeyType(f.keyType) {
		return o, usageError{fmt.Sprintf("--key-type %q: want one of %s", f.keyType, strings.Join(keys.KeyTypes, ", "))}
	}
	if f.serverProfile != "" && f.duration == 0 {
		return o, usageError{"--server-profile needs --duration: the profile covers the run"}
	}
	if f.serverProfile != "" {
		if err := bench.CheckServerProfileURL(f.serverProfile); err != nil {
			return o, usageError{"--server-profile: " + strings.TrimPrefix(err.Error(), "server profile: ")}
		}
	}
	if f.cacert != "" && f.fingerprint != "" {
		return o, usageError{"--cacert and --ca-fingerprint exclude each other"}
	}
	var err error
	if o.Challenge, err = secretFlagOrFile("challenge", f.challenge, "challenge-file", f.challengeFile, secretFromFile); err != nil {
		return o, err
	}
	if o.ESTPassword, err = secretFlagOrFile("est-password", f.estPassword, "est-password-file", f.estPWFile, passwordFromFile); err != nil {
		return o, err
	}
	if o.ESTPassword != "" && o.ESTUser == "" {
		return o, usageError{"--est-password needs --est-user"}
	}
	switch {
	case o.Protocol == bench.SCEP && o.Challenge == "":
		return o, usageError{"--challenge (or --challenge-file, SCEPTER_CHALLENGE) is required for SCEP"}
	case o.Protocol == bench.EST && o.Challenge == "" && o.ESTUser == "":
		return o, usageError{"EST needs --est-user and --est-password(-file), or --challenge"}
	case o.Protocol == bench.EST && o.ESTUser != "" && o.ESTPassword == "":
		// Each request would send an empty password, a failed check
		// toward that user's lockout on the server.
		return o, usageError{"--est-user " + printable(o.ESTUser) + " has no password: give it with --est-password-file FILE (its first line) or SCEPTER_EST_PASSWORD"}
	}
	if f.cacert != "" {
		certs, err := keys.LoadCertFile(f.cacert)
		if err != nil {
			return o, fmt.Errorf("--cacert: %w", err)
		}
		o.Roots = x509.NewCertPool()
		for _, c := range certs {
			o.Roots.AddCert(c)
		}
		o.RootsFile = f.cacert
	}
	for _, p := range f.pids {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return o, usageError{fmt.Sprintf("--server-pid %q is not a process ID", p)}
		}
		// A mistyped PID would measure nothing, and look like a
		// server that used no CPU.
		if err := bench.CheckServerPID(pid); err != nil {
			return o, usageError{fmt.Sprintf("--server-pid %d: %v", pid, err)}
		}
		// Counted once however often it is given: the figures are sums
		// over the PIDs.
		if !slices.Contains(o.ServerPIDs, pid) {
			o.ServerPIDs = append(o.ServerPIDs, pid)
		}
	}
	for _, u := range f.urls {
		check := bench.CheckSCEPURL
		if o.Protocol == bench.EST {
			check = bench.CheckESTURL
		}
		// A malformed URL is a usage error (exit 2), as any flag, not
		// a failed run (exit 1): a script can tell a typo from a server
		// that failed.
		if err := check(u, o.Profile); err != nil {
			return o, usageError{fmt.Sprintf("--url %q: %v", client.RedactURL(u), err)}
		}
		if o.Protocol != bench.EST {
			// A query that sets operation or message, as enroll
			// refuses it and in its words (the message names the URL).
			if err := checkSCEPURL(u); err != nil {
				return o, err
			}
		}
	}
	if !f.quiet {
		o.Progress = e.stderr
	}
	o.OnClock = f.onClock
	return o, nil
}

// givenExplicitly reports whether the flag was given, on the command line
// or in its environment variable (bench reads no config file), even with
// its default value, which flagGiven cannot tell.
func givenExplicitly(fs *flag.FlagSet, e env, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	if _, ok := e.lookupEnv(config.EnvName(name)); ok {
		given = true
	}
	return given
}

// printBenchSummary writes the human-readable summary of a run.
func printBenchSummary(w io.Writer, r *bench.Result) {
	fmt.Fprintf(w, "scepter bench: %s, %d URL(s), concurrency %d, %s client keys (pool: %d keys, %d CSRs)\n",
		r.Protocol, len(r.URLs), r.Concurrency, r.KeyType, r.PoolKeys, r.PoolCSRs)
	fmt.Fprintf(w, "ok:                %d\n", r.OK)
	fmt.Fprintf(w, "failed:            %d", r.Failed)
	if len(r.Failures) > 0 {
		reasons := make([]string, 0, len(r.Failures))
		for k := range r.Failures {
			reasons = append(reasons, k)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if r.Failures[reasons[i]] != r.Failures[reasons[j]] {
				return r.Failures[reasons[i]] > r.Failures[reasons[j]]
			}
			return reasons[i] < reasons[j]
		})
		parts := make([]string, len(reasons))
		for i, k := range reasons {
			parts[i] = fmt.Sprintf("%s %d", k, r.Failures[k])
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	if n := r.Failures["unfinished"]; n > 0 {
		fmt.Fprintf(w, "enrollments/s:     %.1f (%d ok in %.2fs; the wait for the %d unfinished after --duration is not counted)\n", r.Rate, r.OK, r.ElapsedSeconds, n)
	} else {
		fmt.Fprintf(w, "enrollments/s:     %.1f (%d ok in %.2fs)\n", r.Rate, r.OK, r.ElapsedSeconds)
	}
	fmt.Fprintf(w, "latency (ms):      %s\n", latencyText(r.Latency))
	fmt.Fprintf(w, "  of it the server (ms, request sent to reply's headers): %s\n", latencyText(r.RoundTrip))
	if r.Prepared {
		fmt.Fprintln(w, "  (requests built before the clock started, replies checked after it stopped: --on-clock to time them too)")
	}
	fmt.Fprintf(w, "duplicate serials: %d\n", r.Duplicates)
	if r.BadCerts > 0 {
		fmt.Fprintf(w, "bad certificates:  %d (or signed replies that failed their checks; never accepted by --allow-failures)\n", r.BadCerts)
	}
	if len(r.PerURL) > 1 {
		for _, u := range r.PerURL {
			fmt.Fprintf(w, "  %s: ok %d, failed %d\n", u.URL, u.OK, u.Failed)
		}
	}
	if s := r.Server; s != nil {
		var pids, idle []string
		for _, p := range s.PerPID {
			switch {
			case p.Error != "":
				pids = append(pids, fmt.Sprintf("%d (unreadable: %s)", p.PID, p.Error))
			case p.Idle:
				pids = append(pids, fmt.Sprintf("%d (used no CPU)", p.PID))
				idle = append(idle, strconv.Itoa(p.PID))
			default:
				pids = append(pids, strconv.Itoa(p.PID))
			}
		}
		fmt.Fprintf(w, "server CPU:        %s ms/enrollment (%s s over PID %s)\n", measured(s.CPUMsPerEnroll), measured(s.CPUSeconds), strings.Join(pids, ", "))
		if len(idle) > 0 {
			fmt.Fprintf(w, "warning:           --server-pid %s used no CPU time while %d enrollments succeeded: likely not the server at --url (a mistyped PID, another process); the servers' figures are left out: give the PID of the process serving --url\n", strings.Join(idle, ", "), r.OK)
		}
		if s.PeakRSSKB != nil {
			fmt.Fprintf(w, "server peak RSS:   %.1f MiB (VmHWM, summed)\n", float64(*s.PeakRSSKB)/1024)
		} else {
			fmt.Fprintln(w, "server peak RSS:   n/a")
		}
	}
	if t := r.LoadTool; t != nil {
		fmt.Fprintf(w, "load tool CPU:     %s ms/enrollment, %.0f%% of one core while the clock ran\n", measured(t.CPUMsPerEnroll), 100*t.Cores)
		if t.Cores > 0.7*float64(runtime.GOMAXPROCS(0)) {
			fmt.Fprintln(w, "note:              the load tool kept its cores busy: its own waits for it are part of the latencies")
		}
	}
	if r.Failures[bench.ReasonLockedOut] > 0 {
		// Not the rate limit: --rate-limit 0 does nothing about it.
		fmt.Fprintln(w, "note:              the server locked this address out after too many wrong challenges or passwords (from this run or an earlier one): fix --challenge or the EST password, then wait until the time the server gives (first failures below)")
	}
	if r.Failures[bench.ReasonNotCMS] > 0 {
		// Failed requests, not bad certificates: --allow-failures accepts them.
		fmt.Fprintln(w, "note:              \""+bench.ReasonNotCMS+"\" replies were no SCEP or EST reply at all (empty, a web page, not CMS): something other than the server answered, a proxy say; counted as failed requests, not bad certificates")
	}
	if r.Failures["http:429"] > 0 {
		fmt.Fprintln(w, "note:              HTTP 429 is a server's per-address rate limit; for a benchmark from one address start scepter serve with --rate-limit 0")
	}
	if len(r.FirstErrors) > 0 {
		fmt.Fprintln(w, "first failures:")
		for _, m := range r.FirstErrors {
			fmt.Fprintf(w, "  %s\n", printable(m))
		}
	}
}

// latencyText is l's figures, or "n/a" when none succeeded.
func latencyText(l *bench.Latency) string {
	if l == nil {
		return "n/a"
	}
	return fmt.Sprintf("p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f", l.P50, l.P90, l.P99, l.Max, l.Mean)
}

// measured is a figure with two decimals, or "n/a" when it was not
// measured.
func measured(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return strconv.FormatFloat(*v, 'f', 2, 64)
}
