module github.com/synod-go/synod

go 1.26.0

require (
	github.com/jonboulle/clockwork v0.5.0
	golang.org/x/sync v0.24.0
)
