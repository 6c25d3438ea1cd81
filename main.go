// Command dashauth signs people in to a self-hosted dashboard.
package main

func main() {}
