module example.com/hardened

go 1.22
