package scep_test

import (
	"testing"

	"github.com/scepter/scepter/internal/pkitest"
	"github.com/scepter/scepter/internal/scep"
)

// captureDir holds the byte-exact SCEP captures of real clients.
const captureDir = "../../testdata/captures/scep"

func captureSeeds(f *testing.F) [][]byte {
	seeds := pkitest.SCEPCaptureMessages(captureDir)
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
