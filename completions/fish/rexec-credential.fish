# fish completion for rexec-login, rexec-logout, rexec-whoami, rexec-credential and
# git-credential-rexec (installed once per command name; the others source this file).
#
# Stored account names and hosts come from `rexec-whoami --all --offline --porcelain`:
# it asks no server and never prints a token.

if set --query __rexec_completions_loaded
    exit
end
set --global __rexec_completions_loaded 1

function __rexec_stored --argument-names key
    command rexec-whoami --all --offline --porcelain 2>/dev/null \
        | string replace --filter --regex "^$key=(.+)" '$1' | sort -u
end

function __rexec_setup_operation
    set -l words (commandline --tokenize --cut-at-cursor)
    test (count $words) -ge 2; and contains -- $words[2] configure unconfigure
end

complete --command rexec-login --no-files
complete --command rexec-login --long-option host --exclusive --arguments '(__rexec_stored host)' --description 'Rexec server'
complete --command rexec-login --long-option port --exclusive --description 'Loopback port for the browser callback'
complete --command rexec-login --long-option timeout --exclusive --description 'Seconds to wait for the browser'
complete --command rexec-login --long-option no-browser --description 'Print the login address only'
complete --command rexec-login --long-option token --exclusive --description 'Log in with a token (- reads stdin)'
complete --command rexec-login --long-option switch --description 'Make a stored login the active one'
complete --command rexec-login --long-option user --exclusive --arguments '(__rexec_stored username)' --description 'User to switch to'
complete --command rexec-login --long-option help --description 'Show the usage'
complete --command rexec-login --long-option version --description 'Show the version'

complete --command rexec-logout --no-files
complete --command rexec-logout --long-option host --exclusive --arguments '(__rexec_stored host)' --description 'Log out the login for this server'
complete --command rexec-logout --long-option user --exclusive --arguments '(__rexec_stored username)' --description 'Log out the login of this user'
complete --command rexec-logout --long-option all --description 'Every login and stored credential'
complete --command rexec-logout --long-option local --description 'Do not contact the server'
complete --command rexec-logout --long-option help --description 'Show the usage'
complete --command rexec-logout --long-option version --description 'Show the version'

complete --command rexec-whoami --no-files
complete --command rexec-whoami --long-option host --exclusive --arguments '(__rexec_stored host)' --description 'Rexec server'
complete --command rexec-whoami --long-option porcelain --description 'key=value lines for scripts'
complete --command rexec-whoami --long-option json --description 'JSON for scripts'
complete --command rexec-whoami --long-option all --description 'Every login known here'
complete --command rexec-whoami --long-option offline --description 'With --all: ask no server'
complete --command rexec-whoami --long-option help --description 'Show the usage'
complete --command rexec-whoami --long-option version --description 'Show the version'

for command in rexec-credential git-credential-rexec
    complete --command $command --no-files
    complete --command $command --condition __fish_use_subcommand --arguments get --description 'Answer a credential request'
    complete --command $command --condition __fish_use_subcommand --arguments store --description 'Keep a credential'
    complete --command $command --condition __fish_use_subcommand --arguments erase --description 'Remove matching credentials'
    complete --command $command --condition __fish_use_subcommand --arguments configure --description 'Make git ask this helper for the Rexec host'
    complete --command $command --condition __fish_use_subcommand --arguments unconfigure --description 'Undo configure'
    complete --command $command --condition __fish_use_subcommand --long-option help --description 'Show the usage'
    complete --command $command --condition __fish_use_subcommand --long-option version --description 'Show the version'
    complete --command $command --condition __rexec_setup_operation --long-option bearer --description 'Git sends the token as Authorization: Bearer (git 2.46+)'
    complete --command $command --condition __rexec_setup_operation --long-option host --exclusive --arguments '(__rexec_stored host)' --description 'Rexec server'
    complete --command $command --condition __rexec_setup_operation --long-option system --description 'The system git config'
    complete --command $command --condition __rexec_setup_operation --long-option local --description "The repository's git config"
end
