module github.com/cachier-go/cachier

go 1.24
