//! The examples at the end of each command's `--help` (and `slipway help COMMAND`): the
//! commands a user types first, as the README walks through them.

pub const TRAIN: &str = "\
Examples:
  slipway train --data credit.csv --target creditability --positive-class bad --out credit-logistic
  slipway train --data credit.csv --target creditability --model mlp --hidden 32,16 --out credit-mlp
  slipway train --data auto_mpg.csv --target Miles_per_Gallon --model linear --ignore Name --out mpg
  slipway train --data applicants.csv.gz --delimiter ';' --target default --out credit
  slipway train --data credit.csv --target creditability --json > trained.json   # for a pipeline";

pub const EVAL: &str = "\
Examples:
  slipway eval --model credit-logistic --data holdout.csv          # a package folder
  slipway eval --model credit@production --data holdout.csv        # a registered version
  slipway eval --model credit:3 --data holdout.csv --threshold 0.3 --json";

pub const PREDICT: &str = "\
Examples:
  slipway predict --model credit@production --data applicants.csv --out scores.csv
  slipway predict --model credit-mlp --data applicants.csv.gz --id-column applicant_id --out -";

pub const TUNE: &str = "\
Examples:
  slipway tune --data credit.csv --target creditability --model mlp \\
      --grid 'hidden=16,32x16;lr=0.001,0.01' --out credit-tuned
  slipway tune --data credit.csv --target creditability --model mlp \\
      --grid 'lr=0.0001..0.1;l2=0.00001..0.01' --search random --trials 12 --folds 3 \\
      --out credit-tuned";

pub const DEMO: &str = "\
Examples:
  slipway demo                      # trains, registers, promotes and serves the credit model
  slipway demo --dir /tmp/demo      # somewhere else";

pub const REGISTER: &str = "\
Examples:
  slipway register credit-logistic --name credit --description \"logistic baseline\"
  slipway register credit-mlp --name credit --alias staging --tag team=risk
Registering a package the model already has (the same files apart from the training time) is
not a new version: it says `already registered as credit:N`.";

pub const MODELS: &str = "\
Examples:
  slipway models list
  slipway models show credit                  # versions, aliases, headline metric
  slipway models show credit@production       # one version: metrics, lineage, signature
  slipway models example credit@production    # its inputs and a request that works
  slipway models history credit
  slipway models gates credit --alias production --require 'roc_auc>=0.70'";

pub const PROMOTE: &str = "\
Examples:
  slipway promote credit:1 --to production --require 'roc_auc>=0.70' --reason \"first release\"
  slipway promote credit:3 --to production --data holdout.csv --must-beat roc_auc
Exit codes: 0 moved (or already there), 3 refused by a gate (the table says why), 2 a gate
naming a metric Slipway does not record.";

pub const ROLLBACK: &str = "\
Examples:
  slipway rollback credit --alias production --reason \"INC-1234: approvals fell\"";

pub const EXPORT: &str = "\
Examples:
  slipway export credit:2 --out credit-2.tar";

pub const IMPORT: &str = "\
Examples:
  slipway import credit-2.tar --registry other/
  slipway import model.onnx --name cancer --data labelled.csv --target diagnosis --alias staging";

pub const SERVE: &str = "\
Examples:
  slipway serve --model credit@production --http 127.0.0.1:8080 --grpc 127.0.0.1:8081
  slipway serve --alias production            # every model with that alias, following moves
  slipway serve credit-mlp mpg                # package folders
  slipway serve --config slipway.toml
Then: slipway models example credit@production prints a request to send it.";

pub const REGISTRY: &str = "\
Examples:
  slipway registry verify        # every blob against its digest; exit 65 on a problem
  slipway registry audit --limit 20";

pub const COMPLETIONS: &str = "\
Examples:
  slipway completions bash > ~/.local/share/bash-completion/completions/slipway
  slipway completions zsh > ~/.zfunc/_slipway
  slipway completions fish > ~/.config/fish/completions/slipway.fish";

pub const MAN: &str = "\
Examples:
  slipway man --out man/ && man -l man/slipway-train.1
  sudo slipway man --out /usr/local/share/man/man1";

pub const KEYS: &str = "\
Examples:
  slipway keys create --name scoring-app --role infer --models 'credit,fraud-*' --expires 90d
  slipway keys create --name ops --role monitor --rate 20/s
  slipway keys list
  slipway keys rotate 3f9a1c0b7d2e --grace 24h
  slipway keys revoke 3f9a1c0b7d2e";
