// The Go binding of cachekit. The path is not a fetchable URL on purpose: the module has no
// dependencies beyond the standard library, and a program uses it with a replace directive
// pointing at this directory (see README.md), so nothing is ever fetched from the network.
module cachekit.local/cachekit

go 1.19
