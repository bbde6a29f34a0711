//go:build race

package cachier_test

// raceOn: allocation counts are not checked under the race detector, which adds its own.
const raceOn = true
