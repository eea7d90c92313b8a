package scep_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/scepter/scepter/internal/scep"
)

// captureDir holds the byte-exact SCEP captures of real clients.
const captureDir = "../../testdata/captures/scep"

func captureSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	dirs, _ := filepath.Glob(filepath.Join(captureDir, "*"))
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "request.body")); err == nil {
			seeds = append(seeds, b)
		}
		if q, err := os.ReadFile(filepath.Join(d, "request.query")); err == nil {
			if der, err := scep.DecodeQueryMessage(string(q)); err == nil {
				seeds = append(seeds, der)
			}
		}
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	return seeds
}

// FuzzParse: the pkiMessage parser never panics on any bytes.
func FuzzParse(f *testing.F) {
	for _, s := range captureSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := scep.Parse(data)
		if err == nil {
			m.Verify()
		}
	})
}
