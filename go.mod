module dashauth

go 1.26
