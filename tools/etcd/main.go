// etcd for the real-Kubernetes tests: etcd's own go.mod has replace directives, so
// `go install go.etcd.io/etcd/server/v3@version` is refused; this wrapper module requires the
// published server module and calls its main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
