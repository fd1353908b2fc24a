# bash completion for bertctl: source it, or install it as /etc/bash_completion.d/bertctl.
_bertctl() {
  local cur prev words cword
  _init_completion || return
  local commands="classify nsp qa fill-mask tokenize models datasets jobs submit-job vocab health version"
  local globals="--server --token --timeout --output --tls-ca --tls-cert --tls-key --help --version"
  case "$prev" in
    --output|-o) COMPREPLY=($(compgen -W "table json" -- "$cur")); return ;;
    --format) COMPREPLY=($(compgen -W "tsv csv jsonl squad_json text" -- "$cur")); return ;;
    --task) COMPREPLY=($(compgen -W "sequence_classification sentence_pair_classification next_sentence span_extraction pretraining" -- "$cur")); return ;;
    --set) COMPREPLY=($(compgen -S = -W "learning_rate num_train_epochs max_steps per_device_train_batch_size per_device_eval_batch_size gradient_accumulation_steps weight_decay adam_beta1 adam_beta2 adam_epsilon max_grad_norm lr_scheduler_type warmup_steps warmup_ratio seed max_seq_length doc_stride eval_strategy eval_steps save_steps save_total_limit load_best_model_at_end metric_for_best_model early_stopping_patience bf16 vocabulary.source vocabulary.vocab_size vocabulary.min_frequency vocabulary.limit_alphabet vocabulary.lowercase model_size.num_hidden_layers model_size.hidden_size model_size.num_attention_heads model_size.intermediate_size model_size.max_position_embeddings pretraining.masked_lm_prob pretraining.max_predictions_per_seq pretraining.whole_word_masking pretraining.short_seq_prob pretraining.dupe_factor" -- "$cur")); compopt -o nospace; return ;;
    --train|--eval|--config|--context-file|--tls-ca|--tls-cert|--tls-key|upload) _filedir; return ;;
    models) COMPREPLY=($(compgen -W "list get load unload" -- "$cur")); return ;;
    datasets) COMPREPLY=($(compgen -W "upload list get delete" -- "$cur")); return ;;
    jobs) COMPREPLY=($(compgen -W "list get watch cancel logs" -- "$cur")); return ;;
    vocab) COMPREPLY=($(compgen -W "train" -- "$cur")); return ;;
    --base-model) COMPREPLY=($(compgen -W "scratch:tiny scratch:mini scratch:small scratch:medium scratch:base" -- "$cur")); return ;;
  esac
  local i command=""
  for ((i = 1; i < cword; i++)); do
    case "${words[i]}" in classify|nsp|qa|fill-mask|tokenize|models|datasets|jobs|submit-job|vocab|health|version) command=${words[i]}; break ;; esac
  done
  if [[ -z "$command" ]]; then
    COMPREPLY=($(compgen -W "$commands $globals" -- "$cur"))
    return
  fi
  case "$command" in
    classify|tokenize) COMPREPLY=($(compgen -W "--model --pair --batch-size $globals" -- "$cur")) ;;
    nsp) COMPREPLY=($(compgen -W "--model --batch-size $globals" -- "$cur")) ;;
    qa) COMPREPLY=($(compgen -W "--model --question --context --context-file --top-k $globals" -- "$cur")) ;;
    fill-mask) COMPREPLY=($(compgen -W "--model --top-k --batch-size $globals" -- "$cur")) ;;
    submit-job) COMPREPLY=($(compgen -W "--task --train --eval --eval-split --base-model --vocab --output --name --priority --set --config --follow --cancel-on-interrupt --format --header --no-header --text --text-pair --label --labels $globals" -- "$cur")) ;;
    vocab) COMPREPLY=($(compgen -W "--out --vocab-size --min-frequency --limit-alphabet --lowercase --cased $globals" -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "$globals" -- "$cur")) ;;
  esac
}
complete -F _bertctl bertctl
