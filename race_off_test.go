//go:build !race

package cachier_test

const raceOn = false
