// Command vulndb turns the OSV entries of golang.org/x/vulndb (as the Go
// module proxy serves it) into the layout govulncheck reads with
// -db file:///DIR: index/db.json, index/modules.json and ID/<id>.json. The
// test command uses it when vuln.go.dev cannot be reached, so the check
// still runs on a machine that reaches only the module proxy.
//
//	go run ./scripts/vulndb -src $GOMODCACHE/golang.org/x/vulndb@VERSION/data/osv -out DIR
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// entry is the part of an OSV entry the index needs.
type entry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Affected []struct {
		Module struct {
			Path string `json:"path"`
		} `json:"module"`
		Ranges []struct {
			Type   string `json:"type"`
			Events []struct {
				Fixed string `json:"fixed"`
			} `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

func main() {
	src := flag.String("src", "", "directory of OSV entries (golang.org/x/vulndb's data/osv)")
	out := flag.String("out", "", "directory to write the database to")
	version := flag.String("version", "", "the vulndb module's version: a pseudo-version dates the database when its entries carry no times")
	flag.Parse()
	if *src == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: vulndb -src DIR -out DIR")
		os.Exit(2)
	}
	n, modified, err := build(*src, *out, pseudoVersionTime(*version))
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(1)
	}
	fmt.Printf("vulnerability database: %d entries, last modified %s, in %s\n", n, modified.Format(time.RFC3339), *out)
}

// pseudoVersionTime is the commit time of a pseudo-version
// (v0.0.0-20261105234957-e22db6528018), zero for anything else.
func pseudoVersionTime(v string) time.Time {
	parts := strings.Split(v, "-")
	if len(parts) < 3 {
		return time.Time{}
	}
	t, err := time.Parse("20060102150405", parts[len(parts)-2])
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func build(src, out string, asOf time.Time) (int, time.Time, error) {
	files, err := filepath.Glob(filepath.Join(src, "GO-*.json"))
	if err != nil || len(files) == 0 {
		return 0, time.Time{}, fmt.Errorf("no OSV entries in %s", src)
	}
	if err := os.MkdirAll(filepath.Join(out, "ID"), 0o755); err != nil {
		return 0, time.Time{}, err
	}
	if err := os.MkdirAll(filepath.Join(out, "index"), 0o755); err != nil {
		return 0, time.Time{}, err
	}
	modules := map[string]*moduleMeta{}
	var latest time.Time
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return 0, time.Time{}, err
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return 0, time.Time{}, fmt.Errorf("%s: %w", f, err)
		}
		if e.ID == "" {
			return 0, time.Time{}, fmt.Errorf("%s: no id", f)
		}
		if e.Modified.After(latest) {
			latest = e.Modified
		}
		for _, a := range e.Affected {
			m := modules[a.Module.Path]
			if m == nil {
				m = &moduleMeta{Path: a.Module.Path}
				modules[a.Module.Path] = m
			}
			fixed := ""
			for _, r := range a.Ranges {
				if r.Type != "SEMVER" {
					continue
				}
				for _, ev := range r.Events {
					if ev.Fixed != "" && semverLess(fixed, ev.Fixed) {
						fixed = ev.Fixed
					}
				}
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: e.Modified, Fixed: fixed})
		}
		if err := os.WriteFile(filepath.Join(out, "ID", e.ID+".json"), raw, 0o644); err != nil {
			return 0, time.Time{}, err
		}
	}
	list := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		sort.Slice(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	if err := writeJSON(filepath.Join(out, "index", "modules.json"), list); err != nil {
		return 0, time.Time{}, err
	}
	if latest.IsZero() {
		latest = asOf // the repository's entries leave their times to the deployed database
	}
	if err := writeJSON(filepath.Join(out, "index", "db.json"), map[string]time.Time{"modified": latest}); err != nil {
		return 0, time.Time{}, err
	}
	return len(files), latest, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// semverLess compares OSV SEMVER versions ("1.2.3", "1.2.3-rc.1", no "v");
// "" is less than anything.
func semverLess(a, b string) bool {
	if a == "" {
		return b != ""
	}
	pa, prea, _ := strings.Cut(strings.TrimPrefix(a, "v"), "-")
	pb, preb, _ := strings.Cut(strings.TrimPrefix(b, "v"), "-")
	na, nb := strings.Split(pa, "."), strings.Split(pb, ".")
	for i := 0; i < max(len(na), len(nb)); i++ {
		x, y := part(na, i), part(nb, i)
		if x != y {
			return x < y
		}
	}
	// A pre-release is less than its release.
	switch {
	case prea == preb:
		return false
	case prea == "":
		return false
	case preb == "":
		return true
	}
	return prea < preb
}

func part(p []string, i int) int {
	if i >= len(p) {
		return 0
	}
	n, _ := strconv.Atoi(p[i])
	return n
}
