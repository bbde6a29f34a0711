package filestore

// SetWalkOnly makes every store resolve paths one component at a time, as where
// openat2 is missing, and returns the previous setting.
func SetWalkOnly(on bool) bool { return openat2Off.Swap(on) }
