package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// update rewrites testdata/BENCHMARKS.golden.md from the report's output:
// go test ./scripts/bench.d/report -update
var update = flag.Bool("update", false, "rewrite testdata/BENCHMARKS.golden.md")

// testdata/results and testdata/meta.txt are a full run of scripts/bench
// (at e233cc1: three rounds, seven servers, concurrency 1, 8 and 64, the
// floors before and after every round), its JSON summaries compacted.

// previous is a BENCHMARKS.md as a rerun finds it: the sections written by
// hand or by other scripts must come through unchanged.
const previous = `# Benchmarks

Old figures, replaced.

<!-- profile -->
## Where the time goes (default configuration)
A hand-written profile, | with a table | 1.23 |.
<!-- /profile -->

<!-- cluster -->
## SQLite and PostgreSQL, one node and several (scripts/bench-cluster)
cluster table
<!-- /cluster -->

<!-- soak -->
## Memory over a long run (scripts/bench-soak)
soak table
<!-- /soak -->
`

// report runs the report on a copy of results (changed first by edit, if
// any) over a BENCHMARKS.md holding previous, and returns what it wrote.
func report(t *testing.T, edit func(results string)) string {
	t.Helper()
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	if err := os.CopyFS(results, os.DirFS("testdata/results")); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(results)
	}
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(out, []byte(previous), 0o644); err != nil {
		t.Fatal(err)
	}
	var term bytes.Buffer
	if err := run(results, "testdata/meta.txt", out, &term); err != nil {
		t.Fatalf("run: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The terminal gets the table and the ratios: the file from its
	// results up to the profile section.
	if i, j := bytes.Index(b, []byte("## Results")), bytes.Index(b, []byte(profileBegin)); i < 0 || j < i ||
		term.String() != string(b[i:j]) {
		t.Errorf("the terminal got %d bytes, not the report's results section", term.Len())
	}
	return string(b)
}

// TestReportGolden: the whole report of a real run, byte for byte. A
// change of wording or layout shows up here in review; -update accepts it.
func TestReportGolden(t *testing.T) {
	got := report(t, nil)
	golden := filepath.Join("testdata", "BENCHMARKS.golden.md")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the report differs from %s (rerun with -update if the change is meant):\n%s", golden, firstDiff(got, string(want)))
	}
}

// TestReportFigures checks the figures the targets rest on against the run
// by hand, so that the golden file cannot bless a wrong median, minimum
// or sum.
func TestReportFigures(t *testing.T) {
	got := report(t, nil)
	expectLines(t, got,
		// scepter-default at c=8: CPU 2.85, 3.01, 3.99 → median 3.01;
		// crypto floor `default`: minimum of 20 repetitions, 1.668 ms.
		"| scepter-default: server CPU / crypto floor `default` ≤ 1.15× | 3.01 ms / 1.668 ms = **1.80×** | **not met** |",
		// scepter-rsa / step-ca per round: 3.62/3.49, 5.15/3.49, 3.69/3.43.
		"3.69 ms / 3.49 ms = **1.06×**; round by round 1.04×, 1.48×, 1.08×",
		// Best throughput: scepter-rsa 269.8/s and step-ca 282.8/s, both at c=64.
		"269.8/s (c=64) / 282.8/s (c=64) = **0.95×**",
		// Failures and duplicates are sums over every run: 3 × 3 × 1,000.
		"| scepter-default: 0 failures and 0 duplicate serials (c = 1, 8, 64) | 0 failures, 0 duplicates in 9000 enrollments | **met** |",
		"| scepter-est: p99 < 30 ms at c=8 | 28.4 ms | **met** |",
		// micromdm's duplicate serials at c=64, summed: 155 + 33 + 39.
		"| 147.7 | 424.4 | 484.5 | 494.0 | 424.3 / 494.0 | 6.76 | 12.9 | 0 | 227 | 3 |",
		"| `rsa-ca` | 0.235 | 20 | 1.10× |",
		// The floor's spread: `default` 1.668–2.448 ms over its 20
		// repetitions, `est-default` 0.051–0.087 ms, the widest.
		"| `default` | 1.668 | 2.448 | 1.47× | 20 |",
		"took up to **1.70×** their minimum in this run (`est-default`)",
	)
	// The sections of other hands, kept as they were, and the old text gone.
	for _, kept := range []string{
		"<!-- profile -->\n## Where the time goes (default configuration)\nA hand-written profile, | with a table | 1.23 |.\n<!-- /profile -->",
		"<!-- cluster -->\n## SQLite and PostgreSQL, one node and several (scripts/bench-cluster)\ncluster table\n<!-- /cluster -->",
		"<!-- soak -->\n## Memory over a long run (scripts/bench-soak)\nsoak table\n<!-- /soak -->",
	} {
		if strings.Count(got, kept) != 1 {
			t.Errorf("section not kept exactly once:\n%s", kept)
		}
	}
	if strings.Contains(got, "Old figures, replaced.") {
		t.Error("the previous report's own text survived")
	}
}

// TestReportIncomplete: a server that could not run, a run missing, and no
// floor at all still give a report, which says what is missing instead of
// a figure.
func TestReportIncomplete(t *testing.T) {
	got := report(t, func(results string) {
		step := filepath.Join(results, "step-ca")
		if err := os.RemoveAll(step); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(step, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(step, "error.txt"), []byte("go install failed: no network\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(results, "scepter-rsa", "c8-r2.json")); err != nil {
			t.Fatal(err)
		}
		floors, err := filepath.Glob(filepath.Join(results, "floor-*.txt"))
		if err != nil || len(floors) == 0 {
			t.Fatalf("floor files: %v, %v", floors, err)
		}
		for _, f := range floors {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	})
	expectLines(t, got,
		"go install failed: no network",
		// scepter-rsa at c=8 from 2 of 3 runs: CPU 3.62 and 3.69, median 3.655.
		"| 2 of 3 |",
		// A run that gave no result may have been a crash or a hang: the
		// target of no failures cannot be met without it.
		"| scepter-rsa: 0 failures and 0 duplicate serials (c = 1, 8, 64) | 0 failures, 0 duplicates in 8000 enrollments; 1 run gave no result | **not met** |",
		// step-ca has no figure: no rate of "n/a/s" at a concurrency 0.
		"| scepter-rsa best enroll/s / step-ca best ≥ 1.25× | 269.8/s (c=64) / n/a = **n/a** | **n/a** |",
	)
	for _, bad := range []string{"NaN", "Inf", "%!"} {
		if strings.Contains(got, bad) {
			t.Errorf("report holds %q:\n%s", bad, got)
		}
	}
}

// TestReportRoundByRound: a comparison with step-ca whose medians meet the
// target is met only if every interleaved round meets it too.
func TestReportRoundByRound(t *testing.T) {
	// setRSA sets scepter-rsa's CPU at c=8 and enroll/s at c=64, round by
	// round. step-ca's, from the testdata: CPU 3.49, 3.49, 3.43 ms; best
	// enroll/s 282.8, 262.4, 290.2.
	setRSA := func(cpu, rate [3]float64) func(string) {
		return func(results string) {
			for i := range 3 {
				editRun(t, filepath.Join(results, "scepter-rsa", fmt.Sprintf("c8-r%d.json", i+1)), func(j map[string]any) {
					j["server"].(map[string]any)["cpu_ms_per_enrollment"] = cpu[i]
				})
				editRun(t, filepath.Join(results, "scepter-rsa", fmt.Sprintf("c64-r%d.json", i+1)), func(j map[string]any) {
					j["enrollments_per_second"] = rate[i]
				})
			}
		}
	}
	for _, tc := range []struct {
		name      string
		cpu, rate [3]float64
		cpuWant   string
		rateWant  string
	}{
		{
			// Medians 2.6 / 3.49 = 0.74× and 380 / 282.8 = 1.34×, but the
			// third round is 3.4 / 3.43 = 0.99× and 300 / 290.2 = 1.03×.
			name: "one round misses", cpu: [3]float64{2.5, 2.6, 3.4}, rate: [3]float64{400, 380, 300},
			cpuWant:  "2.60 ms / 3.49 ms = **0.74×**; round by round 0.72×, 0.74×, 0.99× | **not met in every round** |",
			rateWant: "380.0/s (c=64) / 282.8/s (c=64) = **1.34×**; round by round 1.41×, 1.45×, 1.03× | **not met in every round** |",
		},
		{
			name: "every round meets", cpu: [3]float64{2.5, 2.6, 2.7}, rate: [3]float64{400, 380, 370},
			cpuWant:  "2.60 ms / 3.49 ms = **0.74×**; round by round 0.72×, 0.74×, 0.79× | **met** |",
			rateWant: "380.0/s (c=64) / 282.8/s (c=64) = **1.34×**; round by round 1.41×, 1.45×, 1.27× | **met** |",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := report(t, setRSA(tc.cpu, tc.rate))
			for _, want := range []string{tc.cpuWant, tc.rateWant} {
				if !strings.Contains(got, want) {
					t.Errorf("report lacks %q", want)
				}
			}
		})
	}
}

// editRun rewrites the JSON summary of one run through set.
func editRun(t *testing.T, file string, set func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	set(j)
	if b, err = json.Marshal(j); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// firstDiff shows the first line where a and b differ.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s", i+1, x, y)
		}
	}
	return "(no line differs)"
}

// TestReportSomeServers: a run of some servers only (SERVERS=scepter-default)
// leaves the others' rows out and their targets not applicable.
func TestReportSomeServers(t *testing.T) {
	got := report(t, func(results string) {
		for _, id := range []string{"scepter-default-2p", "scepter-rsa", "step-ca", "micromdm", "scepter-est", "scepter-est-user"} {
			if err := os.RemoveAll(filepath.Join(results, id)); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !strings.Contains(got, "| scepter-default: server CPU / crypto floor `default` ≤ 1.15× | 3.01 ms / 1.668 ms = **1.80×** | **not met** |") {
		t.Error("scepter-default's target is missing")
	}
	if !strings.Contains(got, "| scepter-rsa CPU / step-ca CPU ≤ 0.80× | n/a ms / n/a ms = **n/a** | **n/a** |") {
		t.Error("the comparison with step-ca is not marked n/a")
	}
	for _, gone := range []string{"step-ca (RSA-2048 intermediate as RA) | SCEP", "micromdm scepserver (RSA-2048 CA as RA), reference | SCEP"} {
		if strings.Contains(got, gone) {
			t.Errorf("a row of a server that did not run: %q", gone)
		}
	}
	for _, bad := range []string{"NaN", "Inf", "%!"} {
		if strings.Contains(got, bad) {
			t.Errorf("report holds %q", bad)
		}
	}
}

// TestReportMethodOfTheServersThatRan: the Versions table and the Method
// describe the servers that ran only (r124: a QUICK run of two scepter rows
// told step-ca's and micromdm's set-up and versions); peak RSS is said to be
// the largest over the runs, not a median.
func TestReportMethodOfTheServersThatRan(t *testing.T) {
	const (
		stepSetUp     = "step-ca with a P-256 root"
		stepVersion   = "| step-ca |"
		micromdmSetUp = "micromdm `scepserver ca -init"
		mdmVersion    = "| micromdm scepserver |"
		estUser       = "as an EST user (`scepter est user add`)"
		estBullet     = "- EST: simpleenroll"
		comparison    = "so that TLS does not enter the comparison"
		asOthers      = "as step-ca and micromdm do"
		peakRSS       = "the **maximum** over the runs for peak RSS"
		scepterSetUp  = "scepter `serve --rate-limit 0"
	)
	all := []string{"scepter-default", "scepter-default-2p", "scepter-rsa", "step-ca", "micromdm", "scepter-est", "scepter-est-user"}
	for _, tc := range []struct {
		name        string
		kept        []string
		want, unwnt []string
	}{
		{"all", all, []string{stepSetUp, stepVersion, micromdmSetUp, mdmVersion, estUser, comparison, asOthers, peakRSS, scepterSetUp}, nil},
		{"two scepter rows (QUICK)", []string{"scepter-default", "scepter-rsa"}, []string{peakRSS, scepterSetUp, "SCEP over plain HTTP."},
			[]string{stepSetUp, stepVersion, micromdmSetUp, mdmVersion, estBullet, comparison, "as step-ca", "micromdm do"}},
		{"scepter and step-ca", []string{"scepter-rsa", "step-ca"}, []string{stepSetUp, stepVersion, comparison, "(`--rsa-backend go`), as step-ca does.", scepterSetUp},
			[]string{micromdmSetUp, mdmVersion, estBullet}},
		{"EST alone", []string{"scepter-est"}, []string{estBullet, scepterSetUp},
			[]string{estUser, stepSetUp, micromdmSetUp, comparison, "SCEP over plain HTTP."}},
	} {
		got := report(t, func(results string) {
			for _, id := range all {
				if slices.Contains(tc.kept, id) {
					continue
				}
				if err := os.RemoveAll(filepath.Join(results, id)); err != nil {
					t.Fatal(err)
				}
			}
		})
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: the report lacks %q", tc.name, w)
			}
		}
		for _, u := range tc.unwnt {
			if strings.Contains(got, u) {
				t.Errorf("%s: the report holds %q, of a server that did not run", tc.name, u)
			}
		}
	}
}

// TestReportECRow: the P-256 row, run at concurrency 8 only, gets its line
// in the table, the method's sentence on its replies and its targets
// against the default floor. Its runs here are scepter-default's at c=8.
func TestReportECRow(t *testing.T) {
	got := report(t, func(results string) {
		ec := filepath.Join(results, "scepter-ec")
		if err := os.MkdirAll(ec, 0o755); err != nil {
			t.Fatal(err)
		}
		for r := 1; r <= 3; r++ {
			name := fmt.Sprintf("c8-r%d.json", r)
			b, err := os.ReadFile(filepath.Join(results, "scepter-default", name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ec, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	expectLines(t, got,
		"| scepter, default, P-256 client keys (reply in a password-based envelope) | SCEP | 8 |",
		"- The P-256 row's pool holds P-256 keys.",
		"| scepter-ec: server CPU / crypto floor `default` ≤ 1.15× | 3.01 ms / 1.668 ms = **1.80×** | **not met** |",
		"| scepter-ec: 0 failures and 0 duplicate serials (c = 8) | 0 failures, 0 duplicates in 3000 enrollments | **met** |",
	)
	if strings.Contains(report(t, nil), "P-256 row") {
		t.Error("the method speaks of a P-256 row that did not run")
	}
}

// expectLines fails the test for each of wants that the report lacks.
func expectLines(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestReportVolatileDataDirectories: a run whose data directories were on
// tmpfs says at the top and above the targets that it is not durable and
// counts for no target; a run on a disk says neither.
func TestReportVolatileDataDirectories(t *testing.T) {
	const banner = "> **Data directories on tmpfs**"
	const notDurable = "**Not durable:** the data directories were on tmpfs"
	onDisk := report(t, nil)
	if strings.Contains(onDisk, "Data directories on") || strings.Contains(onDisk, "Not durable") {
		t.Errorf("a run on ext4 is reported as not durable")
	}
	meta, err := os.ReadFile("testdata/meta.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range []string{"tmpfs", "ramfs"} {
		dir := t.TempDir()
		metaFile := filepath.Join(dir, "meta.txt")
		if err := os.WriteFile(metaFile, bytes.Replace(meta, []byte("filesystem=ext4\n"), []byte("filesystem="+fs+"\n"), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "BENCHMARKS.md")
		if err := run("testdata/results", metaFile, out, &bytes.Buffer{}); err != nil {
			t.Fatalf("%s: run: %v", fs, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		want := []string{strings.Replace(banner, "tmpfs", fs, 1), strings.Replace(notDurable, "tmpfs", fs, 1)}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: the report lacks %q", fs, w)
			}
		}
		if i, j := strings.Index(got, want[1]), strings.Index(got, "## Targets"); i < j {
			t.Errorf("%s: the note of a run that is not durable is not under the targets' heading", fs)
		}
	}
}

// TestReportQuickRunJudgesNoTarget: a QUICK=1 run, a try-out, marks no
// target met or not met, and says why above the targets; a full run marks
// them (r113: a quick run marked p99 targets **met**).
func TestReportQuickRunJudgesNoTarget(t *testing.T) {
	meta, err := os.ReadFile("testdata/meta.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		quick  string
		judged bool
	}{
		{"0", true},
		{"1", false},
	} {
		dir := t.TempDir()
		metaFile := filepath.Join(dir, "meta.txt")
		m := regexp.MustCompile(`(?m)^quick=.*\n`).ReplaceAll(meta, nil)
		if err := os.WriteFile(metaFile, append(m, []byte("quick="+tc.quick+"\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "BENCHMARKS.md")
		if err := run("testdata/results", metaFile, out, &bytes.Buffer{}); err != nil {
			t.Fatalf("quick=%s: run: %v", tc.quick, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		got := string(b)
		_, targets, _ := strings.Cut(got, "## Targets")
		marked := strings.Contains(targets, "**met**") || strings.Contains(targets, "**not met")
		if marked != tc.judged {
			t.Errorf("quick=%s: targets marked met or not met: %v, want %v:\n%s", tc.quick, marked, tc.judged, targets)
		}
		if note := "no target is marked met or not met"; strings.Contains(targets, note) == tc.judged {
			t.Errorf("quick=%s: the note %q given: %v", tc.quick, note, !tc.judged)
		}
	}
}

// TestReportNamesTheFloorBenchmarks: the Method names the benchmarks
// scripts/bench ran (its meta floor_bench; without it, the pattern it has
// always run), not BenchmarkCryptoFloor alone (r113).
func TestReportNamesTheFloorBenchmarks(t *testing.T) {
	meta, err := os.ReadFile("testdata/meta.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		meta, want string
	}{
		{"", "`go test -run '^$' -bench '^Benchmark(Crypto|Checks)Floor$' -benchtime 200x -count 5 ./internal/bench/floor`"},
		{"floor_bench=^BenchmarkCryptoFloor$\n", "`go test -run '^$' -bench '^BenchmarkCryptoFloor$' -benchtime 200x"},
	} {
		dir := t.TempDir()
		metaFile := filepath.Join(dir, "meta.txt")
		if err := os.WriteFile(metaFile, append(bytes.Clone(meta), tc.meta...), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "BENCHMARKS.md")
		if err := run("testdata/results", metaFile, out, &bytes.Buffer{}); err != nil {
			t.Fatalf("meta %q: run: %v", tc.meta, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "- Crypto floor: "+tc.want) {
			t.Errorf("meta %q: the Method lacks %s", tc.meta, tc.want)
		}
	}
}

// TestReportUnmeasuredCPU: a run whose server CPU was not measured (null
// from a load tool given a wrong --server-pid, absent, or 0 from an older
// one) makes its cell's CPU unknown: "n/a", and no target passes with it,
// even when the other runs would.
func TestReportUnmeasuredCPU(t *testing.T) {
	const want = "| scepter-rsa: server CPU / crypto floor `rsa-ca` ≤ 1.15× | n/a ms / 2.472 ms = **n/a** | **n/a** |"
	for _, tc := range []struct {
		name string
		set  func(server map[string]any, round int)
	}{
		{"null in every run", func(s map[string]any, _ int) { s["cpu_ms_per_enrollment"] = nil }},
		{"absent in every run", func(s map[string]any, _ int) { delete(s, "cpu_ms_per_enrollment") }},
		{"0 in every run", func(s map[string]any, _ int) { s["cpu_ms_per_enrollment"] = 0 }},
		{"null in one run, the others within the target", func(s map[string]any, round int) {
			s["cpu_ms_per_enrollment"] = 1.0
			if round == 2 {
				s["cpu_ms_per_enrollment"] = nil
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := report(t, func(results string) {
				for i := range 3 {
					editRun(t, filepath.Join(results, "scepter-rsa", fmt.Sprintf("c8-r%d.json", i+1)), func(j map[string]any) {
						tc.set(j["server"].(map[string]any), i+1)
					})
				}
			})
			expectLines(t, got, want)
			for _, bad := range []string{"NaN", "Inf", "%!"} {
				if strings.Contains(got, bad) {
					t.Errorf("report holds %q", bad)
				}
			}
		})
	}
}

// TestReportDuplicates: a load tool that counts a repeated serial as failed
// (verify:duplicate) and in duplicate_serials is read as both, per row and
// in the target, which it does not meet.
func TestReportDuplicates(t *testing.T) {
	got := report(t, func(results string) {
		editRun(t, filepath.Join(results, "scepter-rsa", "c8-r2.json"), func(j map[string]any) {
			j["ok"], j["failed"], j["duplicate_serials"] = 996.0, 4.0, 4.0
			j["failures"] = map[string]any{"verify:duplicate": 4}
			j["first_errors"] = []any{"u: verify:duplicate: verification (duplicate): serial (hex) 07 was received before from the same issuer"}
		})
	})
	expectLines(t, got,
		"| scepter-rsa: 0 failures and 0 duplicate serials (c = 1, 8, 64) | 4 failures, 4 duplicates in 9000 enrollments | **not met** |",
		"- **scepter-rsa** at c=8: 4 failed (verify:duplicate 4)",
	)
}
