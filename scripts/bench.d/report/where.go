package main

// Where the time goes: scripts/bench takes a CPU profile of some servers in
// one more run each (`scepter bench --server-profile`), and turns it into
// text with `go tool pprof -traces`. Each sample goes to the first step
// below whose frames are on its stack; a step's CPU per enrollment is its
// share of the samples times the server's CPU per enrollment in that run,
// read from /proc by the load tool. So the table adds up to that run's CPU,
// and it is regenerated with every run of the script.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// profiledRows are the rows scripts/bench profiles (PROFILE_ROWS there).
var profiledRows = []string{"scepter-default", "scepter-rsa", "scepter-est"}

// The parts a step belongs to: the crypto floor and the checks floor are
// the two floors of the benchmark (internal/bench/floor).
const (
	partFloor  = "crypto floor"
	partChecks = "checks floor"
	partRest   = "the rest"
)

// step is one line of the table. A sample belongs to it when, for every
// group of frames, one of the stack's frames contains one of the group's
// strings.
type step struct {
	name, part string
	groups     [][]string
}

// privateKeyOps are the frames of a private-key signature.
var privateKeyOps = []string{
	"crypto.SignMessage", "crypto/rsa.(*PrivateKey).Sign", "crypto/rsa.SignPKCS1v15", "crypto/rsa.SignPSS",
	"crypto/ecdsa.(*PrivateKey).Sign", "crypto/ecdsa.Sign", "crypto/ed25519.(*PrivateKey).Sign", "crypto11.",
	ours + "keys/opensslrsa.(*Key).Sign",
}

const ours = "github.com/scepter/scepter/internal/"

// steps, in the order a sample is tried against them. The garbage
// collector comes first (its assists run on any goroutine's stack), the
// private-key operations and the checks before the code around them.
var steps = []step{
	{"garbage collection (marking, assists, sweeping)", partRest, [][]string{{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep", "runtime.bgscavenge", "runtime.sweepone", "runtime.gcStart", "runtime.gcMarkTermination"}}},

	{"RSA decryption of the requester's content key", partFloor, [][]string{{"crypto/rsa.(*PrivateKey).Decrypt", "crypto/rsa.DecryptPKCS1v15", "crypto/rsa.DecryptOAEP", "crypto/rsa.decrypt", ours + "keys/opensslrsa.(*Key).Decrypt"}}},
	{"the CA's signature on the certificate", partFloor, [][]string{{ours + "ca.(*Issuer)."}, privateKeyOps}},
	{"the reply's signature (CertRep, by the RA key)", partFloor, [][]string{{ours + "cms.Sign"}, privateKeyOps}},
	{"the TLS handshake's signature", partFloor, [][]string{{"crypto/tls."}, privateKeyOps}},

	{"the requester's signature on the pkiMessage", partChecks, [][]string{{ours + "scep.(*PKIMessage).Verify"}}},
	{"the CSR's proof of possession", partChecks, [][]string{{ours + "enroll.checkProofOfPossession", "crypto/x509.(*CertificateRequest).CheckSignature"}}},
	{"the key policy and weak-key checks", partChecks, [][]string{{ours + "ca.CheckKey"}}},
	{"lint before signing (zlint)", partChecks, [][]string{{ours + "ca/lint.", ours + "ca.(*prepared).lintTBS", "github.com/zmap/zlint/"}}},
	{"the CA's own signature checked on the new certificate", partChecks, [][]string{{ours + "ca.(*Issuer)."}, {"CheckSignature", "crypto/ecdsa.Verify", "crypto/rsa.Verify"}}},
	{"the reply's content key encrypted to the requester", partChecks, [][]string{{ours + "cms.keyTransportRecipient", "crypto/rsa.EncryptPKCS1v15", "crypto/rsa.EncryptOAEP", ours + "cms.pwriWrap"}}},

	{"store: fsync", partRest, [][]string{{"modernc.org/libc.Xfsync", "modernc.org/libc.Xfdatasync", "sqlite/lib._unixSync", "syscall.Fsync"}}},
	{"store: commits (log frames written)", partRest, [][]string{{"sqlite/lib._vdbeCommit", "sqlite/lib._sqlite3WalFrames", "sqlite/lib._sqlite3PagerCommitPhaseOne", "sqlite/lib._sqlite3BtreeCommitPhaseOne"}}},
	{"store: checkpoints and the search index (in the background)", partRest, [][]string{{ours + "store/sqlite.(*Store).checkpointLoop", ours + "store/sqlite.(*Store).searchIndexLoop", ours + "store/sqlite.indexCertificates"}}},
	{"store: statements and the rest of its batches", partRest, [][]string{{"modernc.org/sqlite", ours + "store/", "database/sql."}}},
	{"logging", partRest, [][]string{{"log/slog."}}},
	// Before our own code: the handlers' reads and writes go through
	// wrappers of ours (limitedConn, statusRecorder).
	{"sockets and TLS records (reads, writes, the handshake's key exchange)", partRest, [][]string{{"internal/poll.", "crypto/tls.", "net.(*conn).", "net.(*netFD)."}}},
	{"SCEP, EST and CMS: parsing, building the certificate and the reply, the rest of the service", partRest, [][]string{{ours}}},
	{"HTTP: the server's loop, requests and headers", partRest, [][]string{{"net/http.", "net.", "syscall."}}},
	{"Go runtime: scheduler, timers, network poller", partRest, [][]string{{"runtime."}}},
	{"other", partRest, nil},
}

// matches says whether a stack (its frames' function names) belongs to st.
func (st step) matches(stack []string) bool {
	for _, g := range st.groups {
		found := false
		for _, f := range stack {
			for _, s := range g {
				if strings.Contains(f, s) {
					found = true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// sample is one stack of a profile with its CPU time in seconds.
type sample struct {
	seconds float64
	stack   []string // leaf first
}

// parseTraces reads the output of `go tool pprof -traces`: a header, then
// samples separated by lines of dashes, each a value ("10ms", "1.20s") on
// its first line followed by its frames, innermost first.
func parseTraces(r io.Reader) ([]sample, error) {
	var out []sample
	var cur *sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			cur = nil
			continue
		}
		if !strings.HasPrefix(line, " ") {
			continue // the header
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if cur == nil {
			v, err := parseDuration(fields[0])
			if err != nil || len(fields) < 2 {
				return nil, fmt.Errorf("traces: a sample starts with %q", line)
			}
			out = append(out, sample{seconds: v})
			cur = &out[len(out)-1]
			fields = fields[1:]
		}
		if strings.HasSuffix(fields[0], ":") || strings.Contains(fields[0], ":[") {
			continue // a label, not a frame
		}
		cur.stack = append(cur.stack, fields[0])
	}
	return out, sc.Err()
}

// parseDuration reads pprof's "10ms", "1.20s", "500us", "900ns" as seconds.
func parseDuration(s string) (float64, error) {
	units := []struct {
		suffix string
		scale  float64
	}{{"ns", 1e-9}, {"us", 1e-6}, {"µs", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, err
			}
			return v * u.scale, nil
		}
	}
	return 0, fmt.Errorf("%q is not a duration", s)
}

// classify sums the samples' seconds per step (index into steps).
func classify(samples []sample) (perStep []float64, total float64) {
	perStep = make([]float64, len(steps))
	for _, s := range samples {
		total += s.seconds
		for i, st := range steps {
			if st.matches(s.stack) {
				perStep[i] += s.seconds
				break
			}
		}
	}
	return perStep, total
}

// profiled is one row's profile run.
type profiled struct {
	id       string
	res      result
	perStep  []float64
	total    float64 // seconds of samples
	duration string  // pprof's header line "Duration: …"
}

// msPerEnroll is a step's CPU per enrollment: its share of the samples
// times the run's server CPU per enrollment.
func (p *profiled) msPerEnroll(seconds float64) float64 {
	ms, ok := p.res.cpuMs()
	if p.total == 0 || !ok {
		return math.NaN()
	}
	return seconds / p.total * ms
}

// readProfiles reads RESULTS/profile/ROW.json and ROW.traces of each
// profiled row; a row without both is left out, and why is said.
func readProfiles(results string) (rows []*profiled, missing []string) {
	dir := filepath.Join(results, "profile")
	for _, id := range profiledRows {
		jb, jerr := os.ReadFile(filepath.Join(dir, id+".json"))
		tb, terr := os.ReadFile(filepath.Join(dir, id+".traces"))
		if jerr != nil || terr != nil {
			if why, err := os.ReadFile(filepath.Join(dir, id+".error")); err == nil {
				missing = append(missing, fmt.Sprintf("%s: %s", id, oneLine(string(why))))
			}
			continue
		}
		p := &profiled{id: id}
		if err := json.Unmarshal(jb, &p.res); err != nil {
			missing = append(missing, fmt.Sprintf("%s: its run's summary: %v", id, err))
			continue
		}
		samples, err := parseTraces(bytes.NewReader(tb))
		if err != nil || len(samples) == 0 {
			missing = append(missing, fmt.Sprintf("%s: its profile: %v (%d samples)", id, err, len(samples)))
			continue
		}
		for _, line := range strings.Split(string(tb), "\n") {
			if d, ok := strings.CutPrefix(line, "Duration: "); ok {
				p.duration = d
				break
			}
		}
		p.perStep, p.total = classify(samples)
		rows = append(rows, p)
	}
	return rows, missing
}

// writeWhere writes the table of where each profiled server's CPU went.
func writeWhere(b *bytes.Buffer, meta map[string]string, rows []*profiled, missing []string, floor *floorResult) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("### From CPU profiles of this run\n\n")
	if len(rows) == 0 {
		p("No profile in this run")
		if len(missing) > 0 {
			p(": %s", strings.Join(missing, "; "))
		}
		p(".\n\n")
		return
	}
	p("After the rounds, each server below ran once more at concurrency %s for %s s, pinned as above (bounded by that time alone, so that the run filled the profile: its requests built and its replies checked on the clock), while `scepter bench --server-profile` took a CPU profile of it over the run through its `--pprof-listen`. ", orNA(meta["profile_concurrency"]), orNA(meta["profile_seconds"]))
	p("Each sample goes to the first step of this list whose functions are on its stack (`steps` in scripts/bench.d/report/where.go); a step's CPU per enrollment is its share of the samples times the server's CPU per enrollment in that run, read from /proc. So each column adds up to its run's CPU, and the parts compare with the crypto floor and the checks floor measured by themselves above.\n\n")
	p("| step | part |")
	for _, r := range rows {
		p(" %s: ms (share) |", r.id)
	}
	p("\n|---|---|")
	for range rows {
		p("---:|")
	}
	p("\n")
	for i, st := range steps {
		seen := false
		for _, r := range rows {
			seen = seen || r.perStep[i] > 0
		}
		if !seen {
			continue
		}
		p("| %s | %s |", st.name, st.part)
		for _, r := range rows {
			if r.perStep[i] == 0 {
				p(" – |")
				continue
			}
			p(" %s (%.0f%%) |", f2(r.msPerEnroll(r.perStep[i])), 100*r.perStep[i]/r.total)
		}
		p("\n")
	}
	for _, part := range []string{partFloor, partChecks, partRest} {
		p("| **all of %s** | |", part)
		for _, r := range rows {
			sum := 0.0
			for i, st := range steps {
				if st.part == part {
					sum += r.perStep[i]
				}
			}
			p(" **%s** (%.0f%%) |", f2(r.msPerEnroll(sum)), 100*sum/r.total)
		}
		p("\n")
	}
	p("| **server CPU per enrollment in the profile run** | |")
	for _, r := range rows {
		p(" **%s** |", f2(r.msPerEnroll(r.total)))
	}
	p("\n\n")
	for _, r := range rows {
		def := rowDefOf(r.id)
		p("- %s: %d enrollments, %d failed, %s/s, p99 %s ms; the profile: %s", r.id, r.res.OK, r.res.Failed, f1(r.res.Rate), f1(r.res.Latency.P99), orNA(r.duration))
		if fm := floor.floorMs(def.floor); !math.IsNaN(fm) {
			p("; crypto floor `%s` %s ms", def.floor, f3(fm))
		}
		p(".\n")
	}
	for _, m := range missing {
		p("- Not profiled: %s.\n", m)
	}
	p("\n")
}

func rowDefOf(id string) rowDef {
	for _, d := range rows {
		if d.id == id {
			return d
		}
	}
	return rowDef{id: id}
}
