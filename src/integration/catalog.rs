//! The platforms' product CSV exports, read row by row into catalog entries.
//!
//! - **Shopify** (Products → Export): one row per variant, `Handle` ties a
//!   product's rows together and only its first row carries `Type`,
//!   `Status` and `Published`. Image-only rows (no `Variant SKU`, no
//!   `Variant Price`) are skipped.
//! - **WooCommerce** (Products → Export): one row per product or
//!   variation; a `variable` parent (no price) is skipped, a variation
//!   without categories takes its `Parent`'s (`id:N` or the parent's SKU).
//!
//! A row is refused, with its line number, when its SKU is missing or
//! repeated or an amount does not read exactly; the caller decides whether
//! one bad row refuses the file.

use std::collections::BTreeMap;
use std::io::Read;

use super::{category, units, Currency, MoneyError};
use crate::vocab::Lifecycle;

/// The most rows one file may hold.
pub const ROWS_MAX: usize = 1_000_000;

/// Which export a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CsvFormat {
    /// Shopify's product CSV.
    ShopifyCsv,
    /// WooCommerce's product CSV.
    WoocommerceCsv,
}

/// One sku's catalog values, from one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub sku: String,
    pub category: String,
    /// `None`: the export has no cost for it.
    pub cost_minor: Option<i64>,
    pub price_minor: i64,
    pub stock: i64,
    pub lifecycle: Lifecycle,
}

/// A row read: its line and entry, or why it is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub entry: Result<Entry, RowError>,
}

/// Why a row is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("no SKU (`{column}` is empty)")]
    NoSku { column: &'static str },
    #[error("SKU `{sku}` is already on line {first}")]
    Repeated { sku: String, first: u64 },
    #[error("no price (`{column}` is empty)")]
    NoPrice { column: &'static str },
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("`{column}` is `{text}`, not a whole number")]
    NotANumber { column: &'static str, text: String },
    #[error("{0}")]
    Id(#[from] crate::bounds::IdError),
}

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("line {line}: {source}")]
    Csv { line: u64, source: csv::Error },
    #[error("the file has no `{0}` column: is it a {1} export?")]
    Column(&'static str, &'static str),
    #[error("the file has more than {ROWS_MAX} rows")]
    TooManyRows,
}

/// Reads every row of `input`.
pub fn read(
    format: CsvFormat,
    input: impl Read,
    currency: Currency,
) -> Result<Vec<Row>, FileError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| FileError::Csv { line: 1, source: e })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let mut rows = Vec::new();
    let mut state = State::default();
    for record in reader.records() {
        let record = record.map_err(|e| FileError::Csv {
            line: e.position().map_or(0, csv::Position::line),
            source: e,
        })?;
        if rows.len() >= ROWS_MAX {
            return Err(FileError::TooManyRows);
        }
        let line = record.position().map_or(0, csv::Position::line);
        let get = Fields {
            headers: &headers,
            record: &record,
        };
        let entry = match format {
            CsvFormat::ShopifyCsv => state.shopify(&get, currency),
            CsvFormat::WoocommerceCsv => state.woocommerce(&get, currency),
        };
        let Some(entry) = entry.transpose() else {
            continue;
        };
        let entry = entry.and_then(|e| state.first_use(e, line));
        rows.push(Row { line, entry });
    }
    let needed = match format {
        CsvFormat::ShopifyCsv => ("Variant SKU", "Shopify"),
        CsvFormat::WoocommerceCsv => ("SKU", "WooCommerce"),
    };
    if col(needed.0).is_none() {
        return Err(FileError::Column(needed.0, needed.1));
    }
    Ok(rows)
}

/// One row's fields by column name.
struct Fields<'a> {
    headers: &'a csv::StringRecord,
    record: &'a csv::StringRecord,
}

impl<'a> Fields<'a> {
    /// The field under `name`, trimmed ("" when the column or field is absent).
    fn get(&self, name: &str) -> &'a str {
        self.headers
            .iter()
            .position(|h| h.trim() == name)
            .and_then(|i| self.record.get(i))
            .unwrap_or("")
            .trim()
    }
}

/// What earlier rows tell later ones.
#[derive(Default)]
struct State {
    /// Shopify: the current handle's type and status.
    handle: String,
    kind: String,
    lifecycle: Option<Lifecycle>,
    /// WooCommerce: categories by `id:N` and by SKU, for variations.
    categories: BTreeMap<String, String>,
    /// Every SKU read, with its line.
    seen: BTreeMap<String, u64>,
}

fn whole(column: &'static str, text: &str) -> Result<i64, RowError> {
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<i64>()
        .map(units)
        .map_err(|_| RowError::NotANumber {
            column,
            text: text.to_owned(),
        })
}

impl State {
    fn first_use(&mut self, e: Entry, line: u64) -> Result<Entry, RowError> {
        crate::bounds::check_id("sku", &e.sku)?;
        if let Some(first) = self.seen.get(&e.sku) {
            return Err(RowError::Repeated {
                sku: e.sku,
                first: *first,
            });
        }
        self.seen.insert(e.sku.clone(), line);
        Ok(e)
    }

    fn shopify(&mut self, f: &Fields<'_>, currency: Currency) -> Result<Option<Entry>, RowError> {
        let handle = f.get("Handle");
        if handle != self.handle {
            self.handle = handle.to_owned();
            self.kind = f.get("Type").to_owned();
            if self.kind.is_empty() {
                // "Apparel & Accessories > Shoes": its last part.
                self.kind = f
                    .get("Product Category")
                    .rsplit('>')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_owned();
            }
            self.lifecycle = match (f.get("Status"), f.get("Published")) {
                ("active", _) => Some(Lifecycle::Active),
                ("draft" | "archived", _) => Some(Lifecycle::Discontinued),
                (_, p) if p.eq_ignore_ascii_case("false") => Some(Lifecycle::Discontinued),
                _ => Some(Lifecycle::Active),
            };
        }
        let (sku, price) = (f.get("Variant SKU"), f.get("Variant Price"));
        if sku.is_empty() && price.is_empty() {
            return Ok(None); // an image row
        }
        if sku.is_empty() {
            return Err(RowError::NoSku {
                column: "Variant SKU",
            });
        }
        if price.is_empty() {
            return Err(RowError::NoPrice {
                column: "Variant Price",
            });
        }
        let cost = f.get("Cost per item");
        Ok(Some(Entry {
            sku: sku.to_owned(),
            category: category(&self.kind),
            cost_minor: (!cost.is_empty())
                .then(|| currency.minor("Cost per item", cost))
                .transpose()?,
            price_minor: currency.minor("Variant Price", price)?,
            stock: whole("Variant Inventory Qty", f.get("Variant Inventory Qty"))?,
            lifecycle: self.lifecycle.unwrap_or(Lifecycle::Active),
        }))
    }

    fn woocommerce(
        &mut self,
        f: &Fields<'_>,
        currency: Currency,
    ) -> Result<Option<Entry>, RowError> {
        let (sku, kind) = (f.get("SKU"), f.get("Type"));
        // "Clothing > Tshirts, Accessories": the first category's last part.
        let first = f.get("Categories").split(',').next().unwrap_or("");
        let mut label = first.rsplit('>').next().unwrap_or("").trim().to_owned();
        if label.is_empty() {
            label = self
                .categories
                .get(f.get("Parent"))
                .cloned()
                .unwrap_or_default();
        }
        for key in [format!("id:{}", f.get("ID")), sku.to_owned()] {
            if key != "id:" && !key.is_empty() {
                self.categories.insert(key, label.clone());
            }
        }
        let price = match f.get("Sale price") {
            "" => f.get("Regular price"),
            sale => sale,
        };
        if kind.contains("variable") && price.is_empty() {
            return Ok(None); // a variable product's parent: its variations carry the skus
        }
        if sku.is_empty() {
            return Err(RowError::NoSku { column: "SKU" });
        }
        if price.is_empty() {
            return Err(RowError::NoPrice {
                column: "Regular price",
            });
        }
        let lifecycle = match f.get("Published") {
            "1" | "" => Lifecycle::Active,
            _ => Lifecycle::Discontinued,
        };
        Ok(Some(Entry {
            sku: sku.to_owned(),
            category: category(&label),
            cost_minor: None,
            price_minor: currency.minor("Regular price", price)?,
            stock: whole("Stock", f.get("Stock"))?,
            lifecycle,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbp() -> Currency {
        Currency::parse("GBP").unwrap()
    }

    #[test]
    fn shopify_rows_inherit_their_handle_and_skip_images() {
        let csv = "Handle,Title,Type,Variant SKU,Variant Price,Variant Inventory Qty,Cost per item,Status\n\
                   tr,Trail Runner,footwear,TR-42,89.99,40,41.20,active\n\
                   tr,,,TR-43,89.99,35,,\n\
                   tr,,,,,,,\n\
                   mug,Mug,,MUG-1,12.5,,,draft\n";
        let rows = read(CsvFormat::ShopifyCsv, csv.as_bytes(), gbp()).unwrap();
        assert_eq!(rows.len(), 3);
        let e = rows[1].entry.as_ref().unwrap();
        assert_eq!(
            (e.sku.as_str(), e.category.as_str(), e.price_minor, e.stock),
            ("TR-43", "footwear", 8999, 35)
        );
        assert_eq!(e.cost_minor, None);
        assert_eq!(rows[0].entry.as_ref().unwrap().cost_minor, Some(4120));
        let mug = rows[2].entry.as_ref().unwrap();
        assert_eq!(
            (mug.category.as_str(), mug.lifecycle, mug.price_minor),
            ("uncategorised", Lifecycle::Discontinued, 1250)
        );
        assert_eq!(rows[2].line, 5);
    }

    #[test]
    fn bad_rows_are_named_by_line() {
        let csv = "Handle,Variant SKU,Variant Price,Variant Inventory Qty\n\
                   a,A1,1.999,1\n\
                   a,A1,2.00,1\n\
                   b,,3.00,1\n\
                   c,C1,3.00,many\n";
        let rows = read(CsvFormat::ShopifyCsv, csv.as_bytes(), gbp()).unwrap();
        let errors: Vec<(u64, String)> = rows
            .iter()
            .filter_map(|r| r.entry.as_ref().err().map(|e| (r.line, e.to_string())))
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[0].0, 2);
        assert!(errors[0].1.contains("1.999"), "{errors:?}");
        assert_eq!(errors[1].0, 4);
        assert!(errors[2].1.contains("many"), "{errors:?}");
        // The second A1 reads fine: the first one was refused.
        assert!(rows[1].entry.is_ok());
        let wrong = read(CsvFormat::ShopifyCsv, "ID,SKU\n1,A\n".as_bytes(), gbp());
        assert!(matches!(wrong, Err(FileError::Column("Variant SKU", _))));
    }

    #[test]
    fn woocommerce_variations_take_their_parents_category() {
        let csv = "ID,Type,SKU,Name,Published,Stock,Sale price,Regular price,Categories,Parent\n\
                   10,variable,HOODIE,Hoodie,1,,,,\"Clothing > Hoodies, Sale\",\n\
                   11,variation,HOODIE-S,Hoodie S,1,5,,45.00,,id:10\n\
                   12,simple,MUG,Mug,0,,9.00,11.00,Kitchen,\n";
        let rows = read(CsvFormat::WoocommerceCsv, csv.as_bytes(), gbp()).unwrap();
        assert_eq!(rows.len(), 2);
        let s = rows[0].entry.as_ref().unwrap();
        assert_eq!(
            (s.category.as_str(), s.price_minor, s.stock),
            ("Hoodies", 4500, 5)
        );
        let mug = rows[1].entry.as_ref().unwrap();
        assert_eq!(
            (mug.price_minor, mug.lifecycle),
            (900, Lifecycle::Discontinued)
        );
    }
}
