//go:build scepter_clockoffset

package ca

import "os"

// oddSerials, in builds with the test-only tag scepter_clockoffset and
// $SCEPTER_TEST_ODD_SERIALS set, makes every serial 31 hex digits long: its
// top four bits zero, so that the serial shown in whole bytes
// (pki.ShownSerial) always differs from the stored one by its leading
// zero. A test that expects one form where the code gives the other then
// fails on every run, not on the one in sixteen whose random serial
// happened to be that short. It is read once and never changes.
var oddSerials = os.Getenv("SCEPTER_TEST_ODD_SERIALS") != ""
