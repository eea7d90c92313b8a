// Command report turns what scripts/bench measured into BENCHMARKS.md: the
// machine, the versions, the method, the table of every server and
// concurrency (medians of the runs' `scepter bench --json` summaries), the
// crypto floor (minimum ns/op of BenchmarkCryptoFloor) and the ratios that
// issue 12's targets name, each marked met or not met. Every figure comes
// from those files, and so does the table of where the profiled servers'
// CPU went (where.go); the section between <!-- profile --> and
// <!-- /profile --> of the previous output, written by hand, is kept as it
// was.
//
// It is scripts/bench's helper, not a command of its own:
//
//	report -results DIR -meta FILE -out BENCHMARKS.md
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// rowDef is one server configuration of the benchmark.
type rowDef struct {
	id, label, protocol string
	floor               string // BenchmarkCryptoFloor sub-benchmark, "" when none
}

var rows = []rowDef{
	{"scepter-default", "scepter, default (P-256 CA + RSA-2048 RA)", "SCEP", "default"},
	{"scepter-default-2p", "scepter, default, two Ps on the one core (`GOMAXPROCS=2`), reference", "SCEP", "default"},
	{"scepter-ec", "scepter, default, P-256 client keys (reply in a password-based envelope)", "SCEP", "default"},
	{"scepter-default-go", "scepter, default, RSA by Go's crypto/rsa (`--rsa-backend go`), reference", "SCEP", "default-go"},
	{"scepter-rsa", "scepter, `--ca-key-type rsa2048 --scep-ra ca`", "SCEP", "rsa-ca"},
	{"scepter-rsa-go", "scepter, `--ca-key-type rsa2048 --scep-ra ca`, RSA by Go's crypto/rsa (`--rsa-backend go`), reference", "SCEP", "rsa-ca-go"},
	{"step-ca", "step-ca (RSA-2048 intermediate as RA)", "SCEP", ""},
	{"micromdm", "micromdm scepserver (RSA-2048 CA as RA), reference", "SCEP", ""},
	{"scepter-est", "scepter, default, EST simpleenroll (static challenge as Basic password)", "EST", "est-default"},
	{"scepter-est-user", "scepter, default, EST simpleenroll (EST user as Basic credentials)", "EST", "est-default"},
}

// scepterRows are the rows the targets of scepter apply to.
var scepterRows = []string{"scepter-default", "scepter-ec", "scepter-rsa", "scepter-est", "scepter-est-user"}

// Targets of issue 12.
const (
	targetFloor    = 1.15 // server CPU / crypto floor, at most
	targetCPU      = 0.8  // scepter-rsa CPU / step-ca CPU, at most
	targetRate     = 1.25 // scepter-rsa best enroll/s / step-ca best, at least
	targetP99      = 30.0 // ms, at c = ratioConc
	ratioConc      = 8    // the concurrency the CPU and p99 targets are read at
	profileBegin   = "<!-- profile -->"
	profileEnd     = "<!-- /profile -->"
	defaultProfile = profileBegin + "\n_Earlier findings, written by hand: none yet; scripts/bench keeps this section._\n" + profileEnd
)

// result is the part of `scepter bench --json` the report reads.
type result struct {
	Attempted  int            `json:"attempted"`
	OK         int            `json:"ok"`
	Failed     int            `json:"failed"`
	Failures   map[string]int `json:"failures"`
	FirstErrs  []string       `json:"first_errors"`
	BadCerts   int            `json:"bad_certs"`
	Duplicates int            `json:"duplicate_serials"`
	Rate       float64        `json:"enrollments_per_second"`
	Latency    struct {
		P50 float64 `json:"p50"`
		P90 float64 `json:"p90"`
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
	RoundTrip struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"round_trip_ms"`
	// Server's figures are null when the load tool could not measure
	// them (and were 0 from older load tools): unknown, never a figure.
	Server *struct {
		CPUMs     *float64 `json:"cpu_ms_per_enrollment"`
		PeakRSSKB *int64   `json:"peak_rss_kb"`
	} `json:"server"`
	Prepared bool `json:"prepared"`
	LoadTool *struct {
		Cores float64 `json:"cores"`
	} `json:"load_tool"`
	round int // from the file's name, not its JSON
}

// cpuMs is the server's CPU time per enrollment, and whether it was
// measured: not when null or absent, nor 0, which older load tools wrote
// for a figure they could not measure.
func (r result) cpuMs() (float64, bool) {
	if r.Server == nil || r.Server.CPUMs == nil || *r.Server.CPUMs <= 0 {
		return 0, false
	}
	return *r.Server.CPUMs, true
}

// cell is one server at one concurrency: the medians of its runs.
type cell struct {
	conc                int
	runs, wanted        int
	rate, p50, p90, p99 float64
	rtP50, rtP99        float64         // the wait for the server (round_trip_ms); NaN when unknown
	cpu                 float64         // NaN when unknown, in any of the runs
	cpuByRound          map[int]float64 // each round's run, for the comparisons round by round
	rateByRound         map[int]float64
	rssMB               float64 // NaN when unknown
	toolCores           float64 // the load tool's busiest run: cores used while the clock ran; NaN when unknown
	prepared            int     // runs whose requests were built before the clock
	attempted, failed   int
	dups, bad           int
	reasons             map[string]int
	firstErr            string
}

type rowData struct {
	def   rowDef
	cells []*cell
	err   string // why the row is unavailable or incomplete
}

func main() {
	results := flag.String("results", "", "directory of the runs' results")
	metaFile := flag.String("meta", "", "key=value file: machine, versions, parameters")
	out := flag.String("out", "BENCHMARKS.md", "file to write (its profile section is kept)")
	flag.Parse()
	if err := run(*results, *metaFile, *out, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// run writes the report to out, and its table and ratios to term.
func run(results, metaFile, out string, term io.Writer) error {
	meta, err := readMeta(metaFile)
	if err != nil {
		return err
	}
	concs := parseConcs(meta["concurrency"])
	wanted, _ := strconv.Atoi(meta["runs"])
	var data []*rowData
	for _, d := range rows {
		rd, err := readRow(filepath.Join(results, d.id), d, concs, wanted)
		if err != nil {
			return err
		}
		if rd != nil {
			data = append(data, rd)
		}
	}
	floor, floorErr := readFloor(results)
	profiles, notProfiled := readProfiles(results)
	profile := defaultProfile
	var kept []string
	if old, err := os.ReadFile(out); err == nil {
		if p, ok := extractSection(string(old), profileBegin, profileEnd); ok {
			profile = p
		}
		// The sections of scripts/bench-cluster and scripts/bench-soak stay
		// too, after the rest.
		for _, name := range []string{"cluster", "soak"} {
			if p, ok := extractSection(string(old), "<!-- "+name+" -->", "<!-- /"+name+" -->"); ok {
				kept = append(kept, p)
			}
		}
	}
	var b bytes.Buffer
	write(&b, meta, data, floor, floorErr, profile, profiles, notProfiled)
	for _, p := range kept {
		fmt.Fprintf(&b, "\n%s\n", p)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return err
	}
	text := b.String()
	if i := strings.Index(text, "## Results"); i >= 0 {
		if j := strings.Index(text, profileBegin); j > i {
			text = text[i:j]
		} else {
			text = text[i:]
		}
		if _, err := io.WriteString(term, text); err != nil {
			return err
		}
	}
	return nil
}

func readMeta(path string) (map[string]string, error) {
	m := map[string]string{}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			m[k] = v
		}
	}
	return m, sc.Err()
}

func parseConcs(s string) []int {
	var cs []int
	for _, f := range strings.Fields(s) {
		if c, err := strconv.Atoi(f); err == nil {
			cs = append(cs, c)
		}
	}
	return cs
}

var runName = regexp.MustCompile(`^c(\d+)-r(\d+)\.json$`)

// readRow reads a server's runs; nil when the server was not part of the
// run at all.
func readRow(dir string, d rowDef, concs []int, wanted int) (*rowData, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	rd := &rowData{def: d}
	if b, err := os.ReadFile(filepath.Join(dir, "error.txt")); err == nil {
		rd.err = strings.TrimSpace(string(b))
	}
	byConc := map[int][]result{}
	for _, e := range entries {
		m := runName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		c, _ := strconv.Atoi(m[1])
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, e.Name(), err)
		}
		r.round, _ = strconv.Atoi(m[2])
		byConc[c] = append(byConc[c], r)
	}
	for _, c := range concs {
		rs := byConc[c]
		if len(rs) == 0 {
			continue
		}
		x := &cell{conc: c, runs: len(rs), wanted: wanted, reasons: map[string]int{},
			cpuByRound: map[int]float64{}, rateByRound: map[int]float64{}}
		var rate, p50, p90, p99, rtP50, rtP99, cpu, rss, toolCores []float64
		cpuUnknown := false
		for _, r := range rs {
			rate = append(rate, r.Rate)
			x.rateByRound[r.round] = r.Rate
			p50 = append(p50, r.Latency.P50)
			p90 = append(p90, r.Latency.P90)
			p99 = append(p99, r.Latency.P99)
			if r.RoundTrip.P50 > 0 { // absent from the JSON of older load tools
				rtP50 = append(rtP50, r.RoundTrip.P50)
				rtP99 = append(rtP99, r.RoundTrip.P99)
			}
			if ms, ok := r.cpuMs(); ok {
				cpu = append(cpu, ms)
				x.cpuByRound[r.round] = ms
			} else {
				cpuUnknown = true
			}
			if r.Server != nil && r.Server.PeakRSSKB != nil && *r.Server.PeakRSSKB > 0 {
				rss = append(rss, float64(*r.Server.PeakRSSKB)/1024)
			}
			if r.LoadTool != nil {
				toolCores = append(toolCores, r.LoadTool.Cores)
			}
			if r.Prepared {
				x.prepared++
			}
			x.attempted += r.Attempted
			x.failed += r.Failed
			x.dups += r.Duplicates
			x.bad += r.BadCerts
			for k, v := range r.Failures {
				x.reasons[k] += v
			}
			if x.firstErr == "" && len(r.FirstErrs) > 0 {
				x.firstErr = r.FirstErrs[0]
			}
		}
		x.rate, x.p50, x.p90, x.p99 = median(rate), median(p50), median(p90), median(p99)
		x.rtP50, x.rtP99 = math.NaN(), math.NaN()
		if len(rtP50) > 0 {
			x.rtP50, x.rtP99 = median(rtP50), median(rtP99)
		}
		x.toolCores = math.NaN()
		if len(toolCores) > 0 {
			x.toolCores = slicesMax(toolCores)
		}
		// A run that did not measure the server's CPU (a wrong
		// --server-pid, say) leaves the cell's unknown: a median of the
		// others would pass for all of them.
		x.cpu, x.rssMB = math.NaN(), math.NaN()
		if len(cpu) > 0 && !cpuUnknown {
			x.cpu = median(cpu)
		}
		if len(rss) > 0 {
			x.rssMB = slicesMax(rss)
		}
		rd.cells = append(rd.cells, x)
	}
	return rd, nil
}

// roundRatios lists a over b, round by round, for the rounds both have (in
// round order), and says them as text: a server measured right after the
// other is the fairest comparison on a machine whose speed changes from
// minute to minute. With fewer than two such rounds there is nothing to
// add to the medians.
func roundRatios(a, b map[int]float64) ([]float64, string) {
	var rounds []int
	for r := range a {
		if _, ok := b[r]; ok {
			rounds = append(rounds, r)
		}
	}
	if len(rounds) < 2 {
		return nil, ""
	}
	sort.Ints(rounds)
	ratios := make([]float64, len(rounds))
	parts := make([]string, len(rounds))
	for i, r := range rounds {
		ratios[i] = a[r] / b[r]
		parts[i] = f2(ratios[i]) + "×"
	}
	return ratios, "; round by round " + strings.Join(parts, ", ")
}

// markRounds marks a target that the medians' ratio r meets (ok) as met
// only if every round's ratio meets it too. On this kind of machine one
// server can catch a slow stretch that its rival missed, and the medians
// then show a gain that no like-for-like pair does.
func markRounds(r float64, rounds []float64, ok func(float64) bool) string {
	if math.IsNaN(r) || !ok(r) {
		return mark(false, !math.IsNaN(r))
	}
	for _, x := range rounds {
		if !ok(x) {
			return "**not met in every round**"
		}
	}
	return mark(true, true)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func slicesMax(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

// floorResult is the minimum ns/op of each BenchmarkCryptoFloor and
// BenchmarkChecksFloor sub-benchmark over every repetition, the slowest
// repetition, and how many there were. The checks floor's are keyed
// "checks/CONFIGURATION".
type floorResult struct {
	ns      map[string]float64
	slowest map[string]float64 // the same work's slowest repetition: how far the machine's speed moved
	n       map[string]int
	unit    string // the metric read: cpu-ns/op or ns/op
	backend string // what the floors without -go made their RSA operations with, "" when not said
}

var (
	benchLine   = regexp.MustCompile(`^Benchmark(CryptoFloor|ChecksFloor)/(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	backendLine = regexp.MustCompile(`^rsa-backend: (.+)$`)
	benchMetric = regexp.MustCompile(`([0-9.e+-]+) (\S+)`)
)

// floorUnits are the metrics a floor is read from, best first: CPU time
// per operation when the benchmark reports it (on a busy machine wall
// time includes the time other processes held the CPU, which the
// servers' CPU figures do not), else ns/op.
var floorUnits = []string{"cpu-ns/op", "ns/op"}

func readFloor(results string) (*floorResult, string) {
	fr := &floorResult{ns: map[string]float64{}, slowest: map[string]float64{}, n: map[string]int{}}
	files, _ := filepath.Glob(filepath.Join(results, "floor-[0-9]*.txt"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if m := backendLine.FindStringSubmatch(line); m != nil {
				fr.backend = strings.TrimSpace(m[1])
				continue
			}
			m := benchLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			key := m[2]
			if m[1] == "ChecksFloor" {
				key = checksKey + key
			}
			metrics := map[string]float64{}
			for _, mm := range benchMetric.FindAllStringSubmatch(m[3], -1) {
				if v, err := strconv.ParseFloat(mm[1], 64); err == nil {
					metrics[mm[2]] = v
				}
			}
			ns, found := 0.0, false
			for _, u := range floorUnits {
				if v, ok := metrics[u]; ok {
					ns, found = v, true
					if fr.unit == "" || fr.unit == u {
						fr.unit = u
					}
					break
				}
			}
			if !found {
				continue
			}
			if old, ok := fr.ns[key]; !ok || ns < old {
				fr.ns[key] = ns
			}
			fr.slowest[key] = math.Max(fr.slowest[key], ns)
			fr.n[key]++
		}
	}
	var why string
	if b, err := os.ReadFile(filepath.Join(results, "floor-error.txt")); err == nil {
		why = strings.TrimSpace(string(b))
	}
	if len(fr.ns) == 0 {
		if why == "" {
			why = "BenchmarkCryptoFloor printed no result"
		}
		return nil, why
	}
	return fr, why
}

// checksKey prefixes a configuration's checks floor in floorResult.
const checksKey = "checks/"

// floorMs is the floor of a configuration in ms, NaN when unknown.
func (f *floorResult) floorMs(name string) float64 {
	if f == nil || name == "" {
		return math.NaN()
	}
	ns, ok := f.ns[name]
	if !ok {
		return math.NaN()
	}
	return ns / 1e6
}

// extractSection is the text from begin to end, both included.
func extractSection(s, begin, end string) (string, bool) {
	i := strings.Index(s, begin)
	if i < 0 {
		return "", false
	}
	j := strings.Index(s[i:], end)
	if j < 0 {
		return "", false
	}
	return s[i : i+j+len(end)], true
}

func (rd *rowData) at(c int) *cell {
	if rd == nil {
		return nil
	}
	for _, x := range rd.cells {
		if x.conc == c {
			return x
		}
	}
	return nil
}

// bestByRound is each round's best enroll/s, over the concurrencies.
func (rd *rowData) bestByRound() map[int]float64 {
	best := map[int]float64{}
	if rd == nil {
		return best
	}
	for _, x := range rd.cells {
		for r, v := range x.rateByRound {
			best[r] = max(best[r], v)
		}
	}
	return best
}

func (rd *rowData) best() (float64, int) {
	best, conc := math.NaN(), 0
	if rd == nil {
		return best, conc
	}
	for _, x := range rd.cells {
		if math.IsNaN(best) || x.rate > best {
			best, conc = x.rate, x.conc
		}
	}
	return best, conc
}

// preparedText says what the load tool did per enrollment on the clock:
// with prepared requests (scepter bench's default with a count) only send
// and receive.
func preparedText(data []*rowData) string {
	runs, prepared := 0, 0
	for _, rd := range data {
		for _, x := range rd.cells {
			runs += x.runs
			prepared += x.prepared
		}
	}
	const check = "the chain, that the key matches the CSR, that the serial is new"
	switch {
	case runs > 0 && prepared == runs:
		return "It also signs and encrypts every SCEP run's PKCSReqs before the clock starts (each with its own transaction nonce, to the RA with the strongest AES the server offers), so that on the clock it only sends each request over a kept-alive HTTP connection and reads the reply; after the clock stops it decrypts and verifies every reply: " + check + "."
	case prepared == 0:
		return "Per enrollment it then signs the pkiMessage, encrypts it to the RA with the strongest AES the server offers, sends a PKCSReq over a kept-alive HTTP connection and decrypts and verifies the reply: " + check + "."
	default:
		return fmt.Sprintf("In %d of the %d runs it also built the requests before the clock and checked the replies after it (`scepter bench`'s default with a count); in the others it signed, encrypted, decrypted and verified (%s) on the clock.", prepared, runs, check)
	}
}

// toolCoresText tells how busy the load tool's own core was in its busiest
// run: near 100 %, its own waits are part of the latencies.
func toolCoresText(data []*rowData) string {
	busiest, where := math.NaN(), ""
	for _, rd := range data {
		for _, x := range rd.cells {
			if x.toolCores > busiest || (math.IsNaN(busiest) && !math.IsNaN(x.toolCores)) {
				busiest, where = x.toolCores, fmt.Sprintf("%s at concurrency %d", rd.def.label, x.conc)
			}
		}
	}
	if math.IsNaN(busiest) {
		return ""
	}
	return fmt.Sprintf("While the clock ran, the load tool used at most %.0f%% of its core (%s).", 100*busiest, where)
}

// fewerConcurrenciesText names the rows measured at only some of the
// concurrencies (the references and variants, to keep the run short), so
// that a reader does not look for their other rows; "" when every row ran
// at every one.
func fewerConcurrenciesText(data []*rowData, all string) string {
	want := strings.Fields(all)
	var order []string
	rows := map[string][]string{}
	for _, rd := range data {
		if len(rd.cells) == 0 || len(rd.cells) >= len(want) {
			continue
		}
		ran := map[string]bool{}
		var cs []string
		for _, x := range rd.cells {
			c := strconv.Itoa(x.conc)
			ran[c] = true
			cs = append(cs, c)
		}
		var not []string
		for _, c := range want {
			if !ran[c] {
				not = append(not, c)
			}
		}
		key := fmt.Sprintf("at concurrency %s only (not %s)", strings.Join(cs, ", "), strings.Join(not, ", "))
		if rows[key] == nil {
			order = append(order, key)
		}
		rows[key] = append(rows[key], rd.def.label)
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, "- Measured "+k+", to keep the run short: "+strings.Join(rows[k], "; ")+".")
	}
	return strings.Join(parts, "\n")
}

func find(data []*rowData, id string) *rowData {
	for _, rd := range data {
		if rd.def.id == id {
			return rd
		}
	}
	return nil
}

// fixed is v with prec decimals, or "n/a" when it is unknown (NaN).
func fixed(v float64, prec int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func f1(v float64) string { return fixed(v, 1) }
func f2(v float64) string { return fixed(v, 2) }
func f3(v float64) string { return fixed(v, 3) }

// bestRate is a row's best enroll/s and the concurrency it came at, or
// "n/a" when the row has none.
func bestRate(v float64, c int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%s/s (c=%d)", f1(v), c)
}

// times is a ratio as "1.23×", or "n/a" when a side of it is unknown.
func times(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "n/a"
	}
	return f2(r) + "×"
}

// volatileFS reports whether fs, a file system type as df -T prints it,
// keeps its files in memory: fsync there reaches no disk.
func volatileFS(fs string) bool {
	switch fs {
	case "tmpfs", "ramfs":
		return true
	}
	return false
}

func mark(ok bool, known bool) string {
	switch {
	case !known:
		return "**n/a**"
	case ok:
		return "**met**"
	default:
		return "**not met**"
	}
}

func write(b *bytes.Buffer, meta map[string]string, data []*rowData, floor *floorResult, floorErr, profile string, profiles []*profiled, notProfiled []string) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("# Benchmarks\n\n")
	p("Written by `scripts/bench` on %s; every figure below comes from its tools (`scepter bench --json`, `go test -bench`), none is typed by hand except the section of earlier findings under the table of where the time goes. Rerun it to replace them; it keeps that section and the sections of `scripts/bench-cluster` and `scripts/bench-soak` (written by those scripts) as they are.\n\n", meta["date"])
	if meta["quick"] == "1" {
		p("> **QUICK=1 run**: %s enrollments per run, %s run(s) per cell. For a try-out, not for comparison.\n\n", meta["n"], meta["runs"])
	}
	volatile := volatileFS(meta["filesystem"])
	if volatile {
		p("> **Data directories on %s**: memory, not a disk, so the fsync each issuance waits for costs nothing, and a crash would lose what the servers recorded. Such a run shows what the disk costs (against a run on the disk); it does not count for issue 12's targets, as the targets' section says again.\n\n", meta["filesystem"])
	}

	p("## Machine\n\n")
	p("| | |\n|---|---|\n")
	p("| CPU | %s |\n", meta["cpu"])
	p("| cores | %s (server pinned to CPU %s, load tool to CPU %s, with `taskset`) |\n", meta["cores"], meta["server_cpu"], meta["load_cpu"])
	p("| kernel | %s |\n", meta["kernel"])
	p("| Go | %s |\n", meta["go"])
	p("| load average (1, 5, 15 min) | at the start %s, at the end %s: other work on this machine competes for both CPUs; compare figures of one run only |\n", meta["loadavg_start"], meta["loadavg_end"])
	p("| data directories | %s, in a fresh temporary directory per server |\n", meta["filesystem"])
	p("| duration of the whole run | %s s |\n\n", meta["duration_seconds"])

	p("## Versions\n\n")
	p("| server | version |\n|---|---|\n")
	// The servers that ran: a run of some (SERVERS=…) names no other.
	ranStep, ranMicromdm := find(data, "step-ca") != nil, find(data, "micromdm") != nil
	p("| scepter | %s |\n", orNA(meta["version_scepter"]))
	if ranStep {
		p("| step-ca | %s |\n", orNA(meta["version_step-ca"]))
	}
	if ranMicromdm {
		p("| micromdm scepserver | %s |\n", orNA(meta["version_micromdm"]))
	}
	p("\n")

	p("## Method\n\n")
	p("- The servers are measured in %s round(s). In each round every server runs alone, started fresh (new CA, new empty store) on 127.0.0.1 and pinned to CPU %s, and `scepter bench` runs pinned to CPU %s: a warm-up of %s enrollments, then one run of %s enrollments at each concurrency (%s), then the next server. The rounds interleave the servers so that a stretch in which other work slows the machine down falls on one run of each server rather than on every run of one.\n",
		meta["runs"], meta["server_cpu"], meta["load_cpu"], meta["warmup"], meta["n"], strings.Join(strings.Fields(meta["concurrency"]), ", "))
	if t := fewerConcurrenciesText(data, meta["concurrency"]); t != "" {
		p("%s\n", t)
	}
	p("- The table shows per cell the **median** of the runs for enroll/s, latency percentiles and server CPU, the **maximum** over the runs for peak RSS, and the **sum** over the runs of failures and duplicate serials.\n")
	p("- Before the clock starts, `scepter bench` builds a pool of %s RSA-2048 client keys (keys are reused, but every enrollment has a CSR and a subject of its own) and their self-signed signer certificates, and fetches GetCACaps and GetCACert. %s\n", meta["pool"], preparedText(data))
	if find(data, "scepter-ec") != nil {
		p("- The P-256 row's pool holds P-256 keys. An EC key cannot receive a reply by key transport, so its reply is a password-based envelope keyed from the challenge (RFC 8894 §3.2.2, PBKDF2 at 100000 iterations): the server derives that key once per challenge and hour, and the load tool once per salt.\n")
	}
	p("- Latency is the load tool's, from the start of an enrollment's work on the clock to its end. \"Of it the server\" is the part spent waiting for the server: from sending the HTTP request to the reply's headers (`round_trip_ms` of `scepter bench --json`); the rest is the load tool's own work on its one core, shared by its workers. %s\n", toolCoresText(data))
	p("- Server CPU is utime+stime of the server process from /proc/PID/stat before and after each run, divided by the enrollments that succeeded.\n")
	p("- Peak RSS is the server process's VmHWM from /proc/PID/status after each run: the largest its resident set has been since it started, which, the server being started afresh each round, takes in the warm-up and that round's earlier runs too. A cell shows the largest over its runs.\n")
	ranEST, ranESTUser := find(data, "scepter-est") != nil, find(data, "scepter-est-user") != nil
	switch {
	case ranEST && ranESTUser:
		p("- EST: simpleenroll over HTTPS (TLS 1.3, kept-alive connections, TLS session resumption on) against the default configuration, authenticated by HTTP Basic: with the static challenge as the password (as the SCEP rows), and, at fewer concurrencies, as an EST user (`scepter est user add`), whose password the server checks by argon2id once, and for 15 minutes after from memory (it looks the user up on every request).\n")
	case ranEST:
		p("- EST: simpleenroll over HTTPS (TLS 1.3, kept-alive connections, TLS session resumption on) against the default configuration, authenticated by HTTP Basic with the static challenge as the password (as the SCEP rows).\n")
	case ranESTUser:
		p("- EST: simpleenroll over HTTPS (TLS 1.3, kept-alive connections, TLS session resumption on) against the default configuration, authenticated by HTTP Basic as an EST user (`scepter est user add`), whose password the server checks by argon2id once, and for 15 minutes after from memory (it looks the user up on every request).\n")
	}
	// As scripts/bench ran it (its meta floor_bench); a run's meta from
	// before it wrote that ran this pattern too.
	floorBench := meta["floor_bench"]
	if floorBench == "" {
		floorBench = "^Benchmark(Crypto|Checks)Floor$"
	}
	p("- Crypto floor: `go test -run '^$' -bench '%s' -benchtime 200x -count 5 ./internal/bench/floor` (the bare private-key operations one enrollment of that configuration must make), pinned to the server's CPU, before each round and after the last; the floor is the **minimum** ns/op over all repetitions. The same runs measure the checks floor below.\n", floorBench)
	if floor != nil && floor.backend != "" {
		var others []string
		if ranStep {
			others = append(others, "step-ca")
		}
		if ranMicromdm {
			others = append(others, "micromdm")
		}
		alike := ""
		switch len(others) {
		case 1:
			alike = ", as " + others[0] + " does"
		case 2:
			alike = ", as " + others[0] + " and " + others[1] + " do"
		}
		p("- RSA: scepter's rows and the floors `default` and `rsa-ca` make their RSA private-key operations through %s, as `serve --rsa-backend auto` (the default) does on this machine; the rows and floors marked Go's crypto/rsa or `-go` make them with Go's crypto/rsa (`--rsa-backend go`)%s.\n", floor.backend, alike)
	}
	// Only the servers that ran are described (r124: a QUICK run of two
	// scepter rows told step-ca's set-up).
	var servers []string
	scepRows, ranScepter := 0, false
	for _, rd := range data {
		if rd.def.protocol == "SCEP" {
			scepRows++
		}
		if strings.HasPrefix(rd.def.id, "scepter") {
			ranScepter = true
		}
	}
	if ranScepter {
		servers = append(servers, "scepter `serve --rate-limit 0 --challenge-file …`, SQLite store (each issuance committed and fsync'd before its reply)")
	}
	if ranStep {
		servers = append(servers, "step-ca with a P-256 root, an RSA-2048 intermediate that is also its SCEP decrypter, a SCEP provisioner with a static challenge (`scripts/bench.d/step-ca.json`), a `badgerv2` database (SyncWrites on) and SCEP served on its plain-HTTP `insecureAddress`")
	}
	if ranMicromdm {
		servers = append(servers, "micromdm `scepserver ca -init -keySize 2048`, then `scepserver -port … -challenge …` (file depot; it listens on every interface, there is no address flag)")
	}
	if len(servers) > 0 {
		p("- Servers: %s.", strings.Join(servers, "; "))
		switch {
		case ranStep || ranMicromdm:
			p(" Plain HTTP for every SCEP server, so that TLS does not enter the comparison.")
		case scepRows > 0:
			p(" SCEP over plain HTTP.")
		}
		p("\n")
	}
	p("\n")

	p("## Results\n\n")
	p("| server | protocol | concurrency | enroll/s | p50 ms | p90 ms | p99 ms | of it the server: p50 / p99 ms | server CPU ms/enroll | peak RSS MiB | failures | duplicate serials | runs |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, rd := range data {
		if len(rd.cells) == 0 {
			p("| %s | %s | | | | | | | | | | | unavailable |\n", rd.def.label, rd.def.protocol)
			continue
		}
		for _, x := range rd.cells {
			fails := strconv.Itoa(x.failed)
			if x.failed > 0 {
				fails += " of " + strconv.Itoa(x.attempted)
			}
			runs := strconv.Itoa(x.runs)
			if x.runs != x.wanted {
				runs = fmt.Sprintf("%d of %d", x.runs, x.wanted)
			}
			p("| %s | %s | %d | %s | %s | %s | %s | %s / %s | %s | %s | %s | %d | %s |\n", rd.def.label, rd.def.protocol, x.conc, f1(x.rate),
				f1(x.p50), f1(x.p90), f1(x.p99), f1(x.rtP50), f1(x.rtP99), f2(x.cpu), f1(x.rssMB), fails, x.dups, runs)
		}
	}
	p("\n")
	var notes []string
	for _, rd := range data {
		if rd.err != "" {
			notes = append(notes, fmt.Sprintf("- **%s**: unavailable or incomplete: %s", rd.def.id, oneLine(rd.err)))
		}
		for _, x := range rd.cells {
			if x.failed > 0 || x.bad > 0 {
				reasons := make([]string, 0, len(x.reasons))
				for k, v := range x.reasons {
					reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
				}
				sort.Strings(reasons)
				n := fmt.Sprintf("- **%s** at c=%d: %d failed (%s)", rd.def.id, x.conc, x.failed, strings.Join(reasons, ", "))
				if x.firstErr != "" {
					n += fmt.Sprintf("; first: `%s`", oneLine(x.firstErr))
				}
				notes = append(notes, n)
			}
		}
	}
	if len(notes) > 0 {
		p("Failures and gaps:\n\n%s\n\n", strings.Join(notes, "\n"))
	}

	p("### Crypto floor\n\n")
	if floor == nil {
		p("Unavailable: %s\n\n", oneLine(floorErr))
	} else {
		what := "wall time (ns/op): on a busy machine it includes time other processes held the CPU, so it can lie above a server's CPU time"
		if floor.unit == "cpu-ns/op" {
			what = "CPU time (cpu-ns/op)"
		}
		p("Read from the benchmark's %s.\n\n", what)
		p("| configuration | floor ms/enroll (minimum) | slowest repetition ms | slowest / minimum | repetitions |\n|---|---:|---:|---:|---:|\n")
		var names, checks []string
		for k := range floor.ns {
			if c, ok := strings.CutPrefix(k, checksKey); ok {
				checks = append(checks, c)
			} else {
				names = append(names, k)
			}
		}
		sort.Strings(names)
		sort.Strings(checks)
		spread, spreadOf := 0.0, ""
		for _, k := range names {
			ratio := floor.slowest[k] / floor.ns[k]
			if ratio > spread {
				spread, spreadOf = ratio, k
			}
			p("| `%s` | %s | %s | %s× | %d |\n", k, strconv.FormatFloat(floor.ns[k]/1e6, 'f', 3, 64),
				strconv.FormatFloat(floor.slowest[k]/1e6, 'f', 3, 64), f2(ratio), floor.n[k])
		}
		p("\n")
		if spreadOf != "" {
			p("The same bare operations, pinned to the same CPU, took up to **%s×** their minimum in this run (`%s`): the machine's own speed moved that much between repetitions, and the servers' CPU and latency figures above moved with it. Compare rows within a round, and read a p99 near its target with this in mind.\n\n", f2(spread), spreadOf)
		}
		if len(checks) > 0 {
			p("The **checks floor** (`BenchmarkChecksFloor`, same package and repetitions) is the work besides the private-key operations that no SCEP enrollment may skip without giving up a security property: the requester's signature on the pkiMessage, the CSR's proof of possession, the key policy and weak-key checks, lint before signing, the check of the CA's own signature on the new certificate, and the reply's content key encrypted to the requester. No parsing, store or HTTP.\n\n")
			p("| configuration | checks floor ms/enroll (minimum) | repetitions | crypto floor + checks floor, × the crypto floor |\n|---|---:|---:|---:|\n")
			for _, c := range checks {
				ck, cr := floor.ns[checksKey+c]/1e6, floor.floorMs(c)
				p("| `%s` | %s | %d | %s× |\n", c, strconv.FormatFloat(ck, 'f', 3, 64), floor.n[checksKey+c], f2((cr+ck)/cr))
			}
			p("\n")
		}
		if floorErr != "" {
			p("Note: %s\n\n", oneLine(floorErr))
		}
	}

	p("## Targets (issue 12)\n\n")
	p("Ratios from this run only. CPU and p99 are read at concurrency %d, as in the issue. A comparison with step-ca is met only if its ratio meets the target in every round as well as in the medians: this machine's speed changes from minute to minute, and one server can catch a slow stretch that the other missed.\n\n", ratioConc)
	if volatile {
		p("**Not durable:** the data directories were on %s (see the top), so no target counts as met in this run, whatever its mark.\n\n", meta["filesystem"])
	}
	// A try-out's few enrollments and single run say nothing a target
	// could be judged by: its marks would read as results all the same.
	quick := meta["quick"] == "1"
	verdict := func(m string) string {
		if quick {
			return "not judged (QUICK=1)"
		}
		return m
	}
	if quick {
		p("**QUICK=1 run** (see the top): too few enrollments and runs to compare, so no target is marked met or not met.\n\n")
	}
	p("| target | measured | |\n|---|---|---|\n")
	for _, id := range scepterRows {
		rd := find(data, id)
		if rd == nil {
			continue
		}
		fl := floor.floorMs(rd.def.floor)
		x := rd.at(ratioConc)
		cpu := math.NaN()
		if x != nil {
			cpu = x.cpu
		}
		r := cpu / fl
		p("| %s: server CPU / crypto floor `%s` ≤ %.2f× | %s ms / %s ms = **%s** | %s |\n", id, rd.def.floor, targetFloor,
			f2(cpu), f3(fl), times(r), verdict(mark(r <= targetFloor, !math.IsNaN(r))))
		if ck := floor.floorMs(checksKey + rd.def.floor); !math.IsNaN(ck) {
			p("| %s, for context: the crypto floor plus the checks floor is already %s× the crypto floor; server CPU / (crypto floor + checks floor) | %s ms / %s ms = %s× | not a target |\n",
				id, f2((fl+ck)/fl), f2(cpu), f3(fl+ck), f2(cpu/(fl+ck)))
		}
	}
	rsa, step := find(data, "scepter-rsa"), find(data, "step-ca")
	{
		a, s := math.NaN(), math.NaN()
		if x := rsa.at(ratioConc); x != nil {
			a = x.cpu
		}
		if x := step.at(ratioConc); x != nil {
			s = x.cpu
		}
		r := a / s
		var rounds []float64
		var text string
		if x, y := rsa.at(ratioConc), step.at(ratioConc); x != nil && y != nil {
			rounds, text = roundRatios(x.cpuByRound, y.cpuByRound)
		}
		p("| scepter-rsa CPU / step-ca CPU ≤ %.2f× | %s ms / %s ms = **%s**%s | %s |\n", targetCPU, f2(a), f2(s), times(r),
			text, verdict(markRounds(r, rounds, func(v float64) bool { return v <= targetCPU })))
	}
	{
		a, ac := rsa.best()
		s, sc := step.best()
		r := a / s
		rounds, text := roundRatios(rsa.bestByRound(), step.bestByRound())
		p("| scepter-rsa best enroll/s / step-ca best ≥ %.2f× | %s / %s = **%s**%s | %s |\n", targetRate, bestRate(a, ac), bestRate(s, sc), times(r),
			text, verdict(markRounds(r, rounds, func(v float64) bool { return v >= targetRate })))
	}
	for _, id := range scepterRows {
		rd := find(data, id)
		if rd == nil {
			continue
		}
		fails, dups, att, missing := 0, 0, 0, 0
		var cs []string
		for _, x := range rd.cells {
			fails += x.failed
			dups += x.dups
			att += x.attempted
			missing += max(0, x.wanted-x.runs)
			cs = append(cs, strconv.Itoa(x.conc))
		}
		known := len(rd.cells) > 0 && rd.err == ""
		// A run without a result (the load tool crashed, hung or could
		// not reach the server) may have hidden failures of its own.
		var lost string
		switch missing {
		case 0:
		case 1:
			lost = "; 1 run gave no result"
		default:
			lost = fmt.Sprintf("; %d runs gave no result", missing)
		}
		p("| %s: 0 failures and 0 duplicate serials (c = %s) | %d failures, %d duplicates in %d enrollments%s | %s |\n", id, strings.Join(cs, ", "),
			fails, dups, att, lost, verdict(mark(fails == 0 && dups == 0 && missing == 0, known)))
	}
	for _, id := range scepterRows {
		rd := find(data, id)
		if rd == nil {
			continue
		}
		v := math.NaN()
		if x := rd.at(ratioConc); x != nil {
			v = x.p99
		}
		p("| %s: p99 < %.0f ms at c=%d | %s ms | %s |\n", id, targetP99, ratioConc, f1(v), verdict(mark(v < targetP99, !math.IsNaN(v))))
	}
	write2(b, meta, data, floor, rsa, step)
	p("\n## Where the time goes\n\n")
	writeWhere(b, meta, profiles, notProfiled, floor)
	p("%s\n", profile)
}

// write2 writes the ratios at every concurrency, when there is any.
func write2(b *bytes.Buffer, meta map[string]string, data []*rowData, floor *floorResult, rsa, step *rowData) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	found := false
	for _, id := range scepterRows {
		found = found || find(data, id) != nil
	}
	if !found {
		return
	}
	p("\nAlso at the other concurrencies (not targets, for reading the trend):\n\n")
	p("| ratio |")
	concs := parseConcs(meta["concurrency"])
	for _, c := range concs {
		p(" c=%d |", c)
	}
	p("\n|---|")
	for range concs {
		p("---:|")
	}
	p("\n")
	// trend prints one row: ratio(c) at each concurrency, n/a where NaN.
	trend := func(label string, ratio func(c int) float64) {
		p("| %s |", label)
		for _, c := range concs {
			p(" %s |", f2(ratio(c)))
		}
		p("\n")
	}
	for _, id := range scepterRows {
		rd := find(data, id)
		if rd == nil {
			continue
		}
		trend(fmt.Sprintf("%s CPU / floor `%s`", id, rd.def.floor), func(c int) float64 {
			if x := rd.at(c); x != nil {
				return x.cpu / floor.floorMs(rd.def.floor)
			}
			return math.NaN()
		})
	}
	if rsa != nil && step != nil {
		both := func(c int, f func(a, s *cell) float64) float64 {
			if a, s := rsa.at(c), step.at(c); a != nil && s != nil {
				return f(a, s)
			}
			return math.NaN()
		}
		trend("scepter-rsa CPU / step-ca CPU", func(c int) float64 {
			return both(c, func(a, s *cell) float64 { return a.cpu / s.cpu })
		})
		trend("scepter-rsa enroll/s / step-ca enroll/s", func(c int) float64 {
			return both(c, func(a, s *cell) float64 { return a.rate / s.rate })
		})
	}
}

func orNA(s string) string {
	if s == "" {
		return "not measured in this run"
	}
	return s
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
