//go:build !linux

package outbox

import "os"

func adviseRandom(*os.File) {}
func dropCache(string)      {}
