//! `#[derive(Params)]` for [`recurrent`](https://docs.rs/recurrent): implements
//! `recurrent::Params` for a struct by listing its fields' parameters in field order, each named
//! by its field path (`encoder.weight_ih_l0`, `head.weight`, `blocks.0.bias`), which are the
//! `state_dict()` keys of a PyTorch `nn.Module` with the same attribute names.
//!
//! Use it through `recurrent` (feature `derive`, on by default), which re-exports it next to the
//! trait of the same name; the documentation and examples are on `recurrent::Params`.
//!
//! * Every field must implement `Params<F>` (layers, tuples, `Vec`s of them, other derived
//!   structs) unless marked `#[params(skip)]`.
//! * The float type `F` is the struct's type parameter bounded by `Float` (or its only type
//!   parameter), else the one of `f32` / `f64` its field types name; `#[params(float = f64)]` on
//!   the struct says it explicitly.
//! * The struct must be `Clone` (a supertrait of `Params`).

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_macro_input, Data, DeriveInput, Fields, GenericParam, Ident, Type};

/// Implements `recurrent::Params` for a struct; see the crate documentation.
#[proc_macro_derive(Params, attributes(params))]
pub fn derive_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// What `#[params(...)]` on the struct says.
#[derive(Default)]
struct ContainerAttrs {
    float: Option<Type>,
}

fn container_attrs(input: &DeriveInput) -> syn::Result<ContainerAttrs> {
    let mut attrs = ContainerAttrs::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("params")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("float") {
                attrs.float = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("unknown attribute: expected `#[params(float = f32)]` or `f64`"))
            }
        })?;
    }
    Ok(attrs)
}

/// Whether the field carries `#[params(skip)]`.
fn skipped(field: &syn::Field) -> syn::Result<bool> {
    let mut skip = false;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("params")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown attribute: expected `#[params(skip)]`"))
            }
        })?;
    }
    Ok(skip)
}

/// The `f32` / `f64` identifiers a type names anywhere in it.
fn float_names(ty: &Type, found: &mut Vec<String>) {
    for token in ty.to_token_stream() {
        collect_idents(token, found);
    }
}

fn collect_idents(token: proc_macro2::TokenTree, found: &mut Vec<String>) {
    match token {
        proc_macro2::TokenTree::Ident(i) if i == "f32" || i == "f64" => {
            let name = i.to_string();
            if !found.contains(&name) {
                found.push(name);
            }
        }
        proc_macro2::TokenTree::Group(g) => {
            for t in g.stream() {
                collect_idents(t, found);
            }
        }
        _ => {}
    }
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(
            input.span(),
            "#[derive(Params)] works on structs only",
        ));
    };
    let attrs = container_attrs(input)?;

    // The fields with parameters: (how to reach it, its name in keys, its type).
    let mut fields: Vec<(TokenStream2, String, &Type)> = Vec::new();
    match &data.fields {
        Fields::Named(named) => {
            for f in &named.named {
                if !skipped(f)? {
                    let ident = f.ident.as_ref().expect("named field");
                    let name = ident.to_string();
                    let name = name.strip_prefix("r#").unwrap_or(&name).to_string();
                    fields.push((quote!(#ident), name, &f.ty));
                }
            }
        }
        Fields::Unnamed(unnamed) => {
            for (i, f) in unnamed.unnamed.iter().enumerate() {
                if !skipped(f)? {
                    let index = syn::Index::from(i);
                    fields.push((quote!(#index), i.to_string(), &f.ty));
                }
            }
        }
        Fields::Unit => {}
    }

    let float: Type = match attrs.float {
        Some(t) => t,
        None => infer_float(input, &fields)?,
    };

    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates: Vec<TokenStream2> = where_clause
        .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();
    predicates.push(quote!(#float: ::recurrent::Float));
    for (_, _, ty) in &fields {
        predicates.push(quote!(#ty: ::recurrent::Params<#float>));
    }
    let named = fields.iter().map(|(access, key, _)| {
        quote! {
            for (name, array) in ::recurrent::Params::<#float>::named_arrays(&self.#access) {
                out.push((::std::format!("{}.{}", #key, name), array));
            }
        }
    });
    let muts = fields.iter().map(|(access, _, _)| {
        quote! {
            out.extend(::recurrent::Params::<#float>::arrays_mut(&mut self.#access));
        }
    });
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::recurrent::Params<#float> for #name #ty_generics
        where
            #(#predicates,)*
        {
            fn named_arrays(
                &self,
            ) -> ::std::vec::Vec<(
                ::std::string::String,
                ::recurrent::__private::ArrayViewD<'_, #float>,
            )> {
                let mut out = ::std::vec::Vec::new();
                #(#named)*
                out
            }

            fn arrays_mut(
                &mut self,
            ) -> ::std::vec::Vec<::recurrent::__private::ArrayViewMutD<'_, #float>> {
                let mut out = ::std::vec::Vec::new();
                #(#muts)*
                out
            }
        }
    })
}

/// The float type when `#[params(float = …)]` is absent.
fn infer_float(input: &DeriveInput, fields: &[(TokenStream2, String, &Type)]) -> syn::Result<Type> {
    let type_params: Vec<&Ident> = input
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(&t.ident),
            _ => None,
        })
        .collect();
    // A type parameter bounded by `Float` (in its declaration or the where clause).
    let bounded_by_float = |ident: &Ident| {
        let in_decl = input.generics.params.iter().any(|p| match p {
            GenericParam::Type(t) => {
                t.ident == *ident
                    && t.bounds
                        .iter()
                        .any(|b| b.to_token_stream().to_string().ends_with("Float"))
            }
            _ => false,
        });
        let in_where = input.generics.where_clause.as_ref().is_some_and(|w| {
            w.predicates.iter().any(|p| match p {
                syn::WherePredicate::Type(pt) => {
                    *ident == pt.bounded_ty.to_token_stream().to_string()
                        && pt
                            .bounds
                            .iter()
                            .any(|b| b.to_token_stream().to_string().ends_with("Float"))
                }
                _ => false,
            })
        });
        in_decl || in_where
    };
    let floats: Vec<&Ident> = type_params
        .iter()
        .copied()
        .filter(|i| bounded_by_float(i))
        .collect();
    if let [f] = floats.as_slice() {
        return Ok(syn::parse_quote!(#f));
    }
    if let [f] = type_params.as_slice() {
        return Ok(syn::parse_quote!(#f));
    }
    let mut names = Vec::new();
    for (_, _, ty) in fields {
        float_names(ty, &mut names);
    }
    match names.as_slice() {
        [one] => Ok(syn::parse_str(one).expect("f32 or f64")),
        _ => Err(syn::Error::new(
            input.ident.span(),
            "cannot tell the float type of these parameters: add `#[params(float = f32)]` (or \
             `f64`, or your type parameter) to the struct",
        )),
    }
}
