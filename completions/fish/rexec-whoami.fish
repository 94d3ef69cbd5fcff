# fish completion: the definitions for every rexec-credential executable are in one file.
source (status dirname)/rexec-credential.fish
